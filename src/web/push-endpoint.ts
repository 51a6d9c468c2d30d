/**
 * Push endpoints are URLs the server will later POST to, so a subscription is a request to make Herald call
 * a URL: only https endpoints of known push services are accepted (no SSRF into the operator's network).
 * A pattern is an https origin; "https://*.example.com" also allows every subdomain (not the bare domain).
 */
export function isAllowedPushEndpoint(endpoint: string, services: readonly string[]): boolean {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' || url.username || url.password) return false;
  return services.some((pattern) => {
    const p = new URL(pattern.replace('*.', 'wildcard-label.'));
    if (p.port !== url.port) return false;
    if (!pattern.includes('*.')) return p.hostname === url.hostname;
    const suffix = p.hostname.slice('wildcard-label'.length);
    return url.hostname.endsWith(suffix) && url.hostname.length > suffix.length;
  });
}
