"""Atlas campaigns: many units x layers x methods as resumable jobs, run here or on Ray (see plan,
jobs, run, executors, catalog).
"""

from .catalog import Catalog
from .executors import LocalExecutor, RayExecutor, make_executor
from .jobs import run_job
from .plan import METHODS, Settings, estimate, plan
from .run import Campaign, run_campaign

__all__ = [
    "Catalog",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "run_job",
    "METHODS",
    "Settings",
    "estimate",
    "plan",
    "Campaign",
    "run_campaign",
]
