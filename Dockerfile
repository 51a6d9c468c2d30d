# One image for every Herald role; docker-compose.yml picks the role with the command.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# tsx (a runtime dependency) runs the TypeScript sources directly: no build stage.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY src ./src
COPY workers ./workers
COPY config ./config
COPY tsconfig.json ./
RUN mkdir -p /app/.herald && chown -R node:node /app/.herald
USER node
ENV HERALD_HOST=0.0.0.0 HERALD_PORT=8080 HERALD_DATA_DIR=/app/.herald
EXPOSE 8080
CMD ["node", "src/cli/herald.mjs", "start"]
