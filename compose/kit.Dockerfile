# inferbench kit image: the whole CLI, used as the runner next to the engines on a GPU VM
# (`inferbench profile` against the router). Build from the repository root and push where the
# VM can pull it:
#   docker build -f compose/kit.Dockerfile -t <registry>/inferbench:<tag> .
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY lib ./lib
COPY stacks ./stacks
COPY cli ./cli
COPY compose ./compose
COPY infra ./infra
COPY loadgen ./loadgen
COPY datagen ./datagen
COPY runner ./runner
COPY targets ./targets
COPY experiments ./experiments
COPY results ./results
COPY services ./services
RUN printf '#!/bin/sh\nexec node /app/bin/inferbench.js "$@"\n' >/usr/local/bin/inferbench \
  && chmod 755 /usr/local/bin/inferbench
USER node
ENTRYPOINT ["inferbench"]
CMD ["--help"]
