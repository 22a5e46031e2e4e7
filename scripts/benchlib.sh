# scripts/benchlib.sh — what the benchmark scripts share (sourced, not run):
# the CPU a process tree used, the median of rounds, waiting for a server.

# A process and all its descendants, one pid a line.
tree() { local p; for p in "$@"; do echo "$p"; tree $(pgrep -P "$p"); done; }

# CPU ticks (user+system) of a process tree; 0 for no pid. /proc/PID/stat
# already covers a process's threads: they are not counted again.
ticks() {
  local total=0 p
  [ -n "${1:-}" ] || { echo 0; return; }
  for p in $(tree "$1"); do
    total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# The median of ';'-separated rounds of blank-separated fields, by field
# KEY (default 2, numeric): the whole round is printed.
median() {
  tr ';' '\n' | grep . | sort -t' ' -k"${1:-2}" -g | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'
}

# Waits up to 10 s for an answer from curl "$@".
wait_http() {
  for _ in $(seq 100); do curl -s -o /dev/null "$@" && return 0; sleep 0.1; done
  echo "no answer: $*" >&2
  return 1
}
