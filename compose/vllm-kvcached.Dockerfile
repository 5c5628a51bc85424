# The managed arm's engine image: the baseline's vLLM image plus one pinned kvcached release
# (the recipe of kvcached's own docker/Dockerfile.vllm), so the two arms differ in KVCached alone.
# A compose host builds it from the bundle (`build:` with the plan's args); for a cluster, build
# and push it once from the repository root:
#   docker build -f compose/vllm-kvcached.Dockerfile --build-arg BASE_IMAGE=<baseline image> \
#     --build-arg KVCACHED_VERSION=<x.y.z> -t <registry>/vllm-kvcached:<x.y.z> .
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG KVCACHED_VERSION
# kvcached compiles a CUDA extension against the image's own torch: no build isolation, and the
# CUDA driver stub on the link path (the build has no GPU). The version check fails the build
# when pip resolved anything else.
RUN LIBRARY_PATH=/usr/local/cuda/lib64/stubs:${LIBRARY_PATH} \
      pip install --no-cache-dir --no-build-isolation "kvcached==${KVCACHED_VERSION}" \
 && pip show kvcached | grep -qx "Version: ${KVCACHED_VERSION}"
LABEL dev.inferbench.base-image="${BASE_IMAGE}" dev.inferbench.kvcached="${KVCACHED_VERSION}"
