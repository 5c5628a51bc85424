# Pinned peer versions (sourced by peers/install.sh). Changing any line changes the cache key, so a
# new set installs beside the old one instead of mutating it.
PEERS_PYTHON_VERSION=3.11.7 # aiperf 0.13 needs >= 3.11; genai-perf 0.0.16 >= 3.10
GENAI_PERF_VERSION=0.0.16
AIPERF_VERSION=0.13.0
# perf_analyzer (genai-perf's engine) ships inside the tritonclient wheel. 2.50.0 is the newest
# whose binary runs on glibc 2.36 (2.60.0's needs 2.38); the PyPI "perf-analyzer" package is an
# empty placeholder (0.1.0), which genai-perf still lists as a dependency.
TRITONCLIENT_VERSION=2.50.0
# perf_analyzer links libcudart.so.12 even for HTTP-only runs; any 12.x runtime satisfies it.
CUDA_RUNTIME_VERSION=12.6.77
# perf_analyzer also links libb64.so.0d, which Debian ships as libb64-0d: unpacked into the cache
# (dpkg-deb -x), so the system is not changed.
LIBB64_DEB_VERSION=1.2-5+b1
