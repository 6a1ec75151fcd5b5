# Sourced by the bench scripts (not run): what several of them share.
#
#   make_cache_models    the six models of bench/cache_bench.sh in
#                        build/bench-models/cache (176, 84 and 32 MB files,
#                        two of each, ASCII output); sets $models (their
#                        folder) and $ids (their ids, space-separated)
#   free_port            prints a free loopback port
#   wait_health PORT     waits (60 s at most) until 127.0.0.1:PORT/health answers

make_cache_models() {
  models=build/bench-models/cache
  mkdir -p "$models"
  local spec
  for spec in "big1 768 8 11" "big2 768 8 12" "mid1 512 8 13" "mid2 512 8 14" \
    "small1 384 4 15" "small2 384 4 16"; do
    set -- $spec  # id dim layers seed
    [ -f "$models/$1.gguf" ] || build/make-tiny-gguf --out "$models/$1.gguf" --dim "$2" \
      --layers "$3" --vocab 8192 --type f16 --seed "$4" --name "$1" --chat-template none \
      --ascii-output >/dev/null
  done
  ids="big1 big2 mid1 mid2 small1 small2"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_health() {
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done
  echo "server on port $1 did not come up" >&2; return 1
}
