"""Arena monitor: the Streamlit entry point (navigation and the shared sidebar), read-only over the store and MLflow.

    .venv/bin/streamlit run apps/monitor/app.py --server.headless true --server.address 127.0.0.1 --server.port 8501

The arena store comes from `ARENA_DB_URL` (else `.arena/arena.db` under the project root), MLflow from
`MLFLOW_TRACKING_URI` (else `mlruns/mlflow.db`), Prefect only from `PREFECT_API_URL`. The kill switch is armed only
when `ARENA_MONITOR_TOKEN` is set where the app runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `monitor_ui` sits beside this file (AppTest does not add the folder itself)
    sys.path.insert(0, str(HERE))
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars in the server log

import streamlit as st  # noqa: E402
from monitor_ui.context import sidebar  # noqa: E402

st.set_page_config(page_title="Arena monitor", page_icon=":material/monitoring:", layout="wide")

PAGES = {
    "Competition": [
        st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
        st.Page("views/agent.py", title="Agent detail", icon=":material/smart_toy:"),
        st.Page("views/risk.py", title="Risk", icon=":material/shield:"),
    ],
    "Research & operations": [
        st.Page("views/research.py", title="Research", icon=":material/science:"),
        st.Page("views/operations.py", title="Operations", icon=":material/settings_heart:"),
    ],
}

page = st.navigation(PAGES)
sidebar()
page.run()
