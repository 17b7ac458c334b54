"""SQL for both planes, one module per aggregate. Plain SQL with psycopg 3; no ORM."""

from infra.repo.clients import ApiKey, Client, ClientRepo, Grant
from infra.repo.deliveries import Attempt, Delivery, DeliveryRepo
from infra.repo.jobs import Claim, CreatedJob, Ended, Ending, Job, JobPage, JobRepo, Start, Started, VariantRecord
from infra.repo.signing_keys import SigningKey, SigningKeyRepo
from infra.repo.templates import SavedVersion, TemplateRepo, TemplateSummary, TemplateVersion
from infra.repo.usage import UsageDay, UsageRepo, UsageReport, UsageTotals
from infra.repo.users import Session, User, UserRepo

__all__ = [
    "ApiKey",
    "Attempt",
    "Claim",
    "Client",
    "ClientRepo",
    "CreatedJob",
    "Delivery",
    "DeliveryRepo",
    "Ended",
    "Ending",
    "Grant",
    "Job",
    "JobPage",
    "JobRepo",
    "SavedVersion",
    "Session",
    "SigningKey",
    "SigningKeyRepo",
    "Start",
    "Started",
    "TemplateRepo",
    "TemplateSummary",
    "TemplateVersion",
    "UsageDay",
    "UsageRepo",
    "UsageReport",
    "UsageTotals",
    "User",
    "UserRepo",
    "VariantRecord",
]
