# Broker image: build with the dev toolchain, run with production dependencies only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json nest-cli.json ./
COPY apps ./apps
COPY libs ./libs
RUN npx nest build broker && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY policies ./policies
# The decision log's spill files (WARDEN_DATA_DIR): mount a volume here so they outlive the container.
RUN mkdir -p /var/lib/warden && chown node:node /var/lib/warden
USER node
EXPOSE 3594 3595
# --single-threaded-gc: every V8 collection runs on the thread whose heap it is, so the decision
# log's writer thread (nice 19) collects at its own priority instead of on helpers at the broker's.
CMD ["node", "--single-threaded-gc", "dist/apps/broker/apps/broker/src/main.js"]
