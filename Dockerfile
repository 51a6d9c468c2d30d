# One image for every Herald role; docker-compose.yml picks the role with the command.
# A build stage with a C compiler: npm install builds the native P-256 key agreement of push encryption
# (src/deliver/push/native) against the image's own Node headers. The image that runs has no compiler and takes
# the installed dependencies and the built addon from it.
FROM node:20-bookworm AS build
ENV NODE_ENV=production npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
COPY src/deliver/push/native ./src/deliver/push/native
# tsx (a runtime dependency) runs the TypeScript sources directly: no build stage for them. Where the addon could
# not be built its folder is left empty, and dispatchers say at start that they use Node's ECDH instead.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force && mkdir -p src/deliver/push/native/build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY src ./src
COPY --from=build /app/src/deliver/push/native/build ./src/deliver/push/native/build
COPY workers ./workers
COPY config ./config
COPY tsconfig.json ./
RUN mkdir -p /app/.herald && chown -R node:node /app/.herald
USER node
ENV HERALD_HOST=0.0.0.0 HERALD_PORT=8080 HERALD_DATA_DIR=/app/.herald
EXPOSE 8080
CMD ["node", "src/cli/herald.mjs", "start"]
