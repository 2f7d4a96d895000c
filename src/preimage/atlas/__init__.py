"""Atlas campaigns: many units x layers x methods as resumable jobs, run here or on Ray.

``plan`` makes the jobs, ``estimate`` times them, ``jobs`` runs one, ``run`` drives a campaign
and commits each job, ``executors`` says where jobs run, ``catalog`` records everything and
``report`` shows it.
"""

from .catalog import Catalog
from .estimate import estimate
from .executors import LocalExecutor, RayExecutor, make_executor
from .jobs import run_job
from .plan import Settings, atlas_methods, plan
from .run import Campaign, run_campaign

__all__ = [
    "Catalog",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "run_job",
    "atlas_methods",
    "Settings",
    "estimate",
    "plan",
    "Campaign",
    "run_campaign",
]
