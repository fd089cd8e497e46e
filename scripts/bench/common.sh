# Shared set-up for the peer benchmarks: a Python venv with the pinned peers, and the release
# build. Sourced by the scripts in this folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BENCH_DIR="${BENCH_DIR:-$ROOT/runs/bench}"
mkdir -p "$BENCH_DIR"
VENV="$ROOT/.venv-bench"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q tokenizers==0.23.3 datatrove==0.10.1
scripts/fetch-assets >/dev/null
cargo build --release --locked -p syne-cli
cargo bench -p syne-data --bench throughput --locked --no-run 2>/dev/null
throughput() { cargo bench -q -p syne-data --bench throughput --locked -- "$@" 2>/dev/null; }
