"""The CI run siray is part of, and the idempotency keys it derives from it.

A CI system re-runs a failed or cancelled job on a fresh runner, whose history (the journal in
SIRAY_DATA_DIR) is empty; what stays the same is the run's identity: GitHub Actions keeps
GITHUB_RUN_ID and GITHUB_JOB (only GITHUB_RUN_ATTEMPT grows), GitLab keeps CI_PIPELINE_ID and
CI_JOB_NAME. A submit's Idempotency-Key derived from that identity and the job's content is the
same in the re-run, so a provider that honours the header answers with the original request
instead of a second paid one. `--run-id` / SIRAY_RUN_ID name a run anywhere else."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

RUN_ID_ENV = "SIRAY_RUN_ID"
# the keys' namespace: a fixed UUID, so that the same run and job give the same key everywhere
NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4c1b-9b7a-2e85d4c0a713")
# the CI variables that make a run's identity (a re-run keeps them all; the attempt is not one)
GITHUB = ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_JOB")
GITLAB = ("CI_PROJECT_ID", "CI_PIPELINE_ID", "CI_JOB_NAME")


@dataclass(frozen=True)
class RunIdentity:
    """`identity` is what keys are made from; `described` names it for people."""

    identity: str
    described: str

    def idempotency_key(self, provider: str, job_key: str, attempt: int = 0) -> str:
        """The key of a job's submit in this run: a UUID (the form the Higgsfield contract
        recommends) from the run, the provider and the job's key. `attempt` counts the earlier
        submits of the job in this run that ended in a definite failure: submitted again, the
        job needs a key of its own, since a finished request keeps its identity."""
        document = json.dumps([self.identity, provider, job_key, attempt])
        return str(uuid.uuid5(NAMESPACE, document))


def run_identity(variables: Mapping[str, str], flag: str | None = None) -> RunIdentity | None:
    """The run siray is part of: --run-id (then SIRAY_RUN_ID) wherever it runs, else a GitHub
    Actions or GitLab CI job; None outside one (keys are then random, kept in the history)."""
    explicit = flag or variables.get(RUN_ID_ENV)
    if explicit:
        source = "--run-id" if flag else RUN_ID_ENV
        return RunIdentity(f"explicit:{explicit}", f"run {explicit} ({source})")
    if variables.get("GITHUB_ACTIONS") == "true" and variables.get("GITHUB_RUN_ID"):
        repository, run, job = (variables.get(name, "") for name in GITHUB)
        return RunIdentity(
            f"github:{repository}/{run}/{job}", f"GitHub Actions run {run}, job {job or '?'}"
        )
    if variables.get("GITLAB_CI") == "true" and variables.get("CI_PIPELINE_ID"):
        project, pipeline, job = (variables.get(name, "") for name in GITLAB)
        return RunIdentity(
            f"gitlab:{project}/{pipeline}/{job}", f"GitLab pipeline {pipeline}, job {job or '?'}"
        )
    return None
