/*
 * P-256 key agreement for web push (RFC 8291), with a fresh ephemeral key pair per call.
 *
 * Node's ECDH.computeSecret runs OpenSSL's EC_KEY_check_key on its own key pair before every derivation: a full
 * scalar multiplication and a pairwise check that prove nothing for a key generated a moment earlier, and cost more
 * than the derivation itself (71 µs against OpenSSL's 31 µs on a 2-core benchmark machine). This calls the same
 * OpenSSL, linked into Node, without that check. The peer's point is still validated: EC_POINT_oct2point refuses a
 * point that is not on the curve, and P-256's cofactor of 1 makes every point on it one of the prime-order group.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/ec.h>
#include <openssl/ecdh.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#define POINT_BYTES 65
#define SECRET_BYTES 32

/* The curve, one per Node environment (a worker thread loading the addon gets its own), freed with it. */
static void free_group(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EC_GROUP_free((EC_GROUP *)data);
}

static napi_value fail(napi_env env, const char *message) {
  ERR_clear_error();
  napi_throw_error(env, "ERR_PUSH_P256", message);
  return NULL;
}

/* derive(uaPublic: 65-byte uncompressed point, out: Buffer of at least 97 bytes): writes the new ephemeral public
 * key (65 bytes) then the shared secret (32 bytes) into out. */
static napi_value derive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  EC_GROUP *group = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, (void **)&group) != napi_ok || argc != 2) return fail(env, "derive takes two buffers");
  unsigned char *peer_bytes, *out;
  size_t peer_len, out_len;
  if (napi_get_buffer_info(env, argv[0], (void **)&peer_bytes, &peer_len) != napi_ok ||
      napi_get_buffer_info(env, argv[1], (void **)&out, &out_len) != napi_ok) return fail(env, "derive takes two buffers");
  if (peer_len != POINT_BYTES || out_len < POINT_BYTES + SECRET_BYTES) return fail(env, "derive takes a 65-byte point and a 97-byte output");

  napi_value result = NULL;
  const char *error = NULL;
  EC_KEY *key = EC_KEY_new();
  EC_POINT *peer = EC_POINT_new(group);
  if (key == NULL || peer == NULL || EC_KEY_set_group(key, group) != 1) error = "out of memory";
  else if (EC_POINT_oct2point(group, peer, peer_bytes, peer_len, NULL) != 1) error = "the subscription p256dh value is not a point on P-256";
  else if (EC_KEY_generate_key(key) != 1) error = "could not generate an ephemeral P-256 key";
  else if (EC_POINT_point2oct(group, EC_KEY_get0_public_key(key), POINT_CONVERSION_UNCOMPRESSED, out, POINT_BYTES, NULL) != POINT_BYTES) error = "could not encode the ephemeral public key";
  else if (ECDH_compute_key(out + POINT_BYTES, SECRET_BYTES, peer, key, NULL) != SECRET_BYTES) error = "P-256 key agreement failed";
  EC_POINT_free(peer);
  EC_KEY_free(key);
  if (error != NULL) return fail(env, error);
  napi_get_undefined(env, &result);
  return result;
}

NAPI_MODULE_INIT() {
  EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  if (group == NULL) {
    napi_throw_error(env, "ERR_PUSH_P256", "P-256 is not available in this OpenSSL");
    return NULL;
  }
  if (napi_set_instance_data(env, group, free_group, NULL) != napi_ok) {
    EC_GROUP_free(group);
    return NULL;
  }
  napi_value fn;
  if (napi_create_function(env, "derive", NAPI_AUTO_LENGTH, derive, group, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "derive", fn) != napi_ok) return NULL;
  return exports;
}
