# codeflow: built with the dev dependencies, run with the production ones only.
# The run stage is what .ci/production-start proves on every CI run, in a clean copy without
# Docker: npm ci --omit=dev, then node dist/server.js. No secret is baked in: every variable
# (OIDC_*, SESSION_SECRET, REDIS_URL, ...) is given to `docker run`; no .env is copied.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:20-slim
# Production refuses the embedded development provider: OIDC_ISSUER and SESSION_SECRET are required.
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# dist/ reads views/ and public/ from beside it (../views, ../public).
COPY --from=build /app/dist ./dist
COPY views ./views
COPY public ./public
# The image's own unprivileged user; the files stay root's, so the process cannot change them.
USER node
EXPOSE 3000
# Slim images have no curl: Node's fetch asks /healthz (liveness, no dependencies).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 3000}/healthz`, { signal: AbortSignal.timeout(4000) }).then((res) => process.exit(res.ok ? 0 : 1), () => process.exit(1))"]
# node itself, not npm start: SIGTERM reaches the server, which finishes in-flight requests.
CMD ["node", "dist/server.js"]
