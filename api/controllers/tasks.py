"""Tasks: status with progress, and cancellation."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, delete, get
from litestar.params import Parameter

from api.access import Access
from api.controllers import TASK_ID, options_for, path_value
from api.schemas import TaskOut, error_responses
from api.services import cancel_task, task_status
from api.state import Services

TASK_PARAM = Parameter(schema_extra={"pattern": TASK_ID})


class TaskController(Controller):
    tags = ["tasks"]
    options = options_for("/tasks/{task_id:path}", "DELETE, GET, OPTIONS")

    @get("/tasks/{task_id:path}", responses=error_responses(401, 404, 422, 503))
    async def status(self, services: Services, access: Access, task_id: str = TASK_PARAM) -> TaskOut:
        """``status`` is PENDING, STARTED, PROGRESS, SUCCESS, FAILURE or REVOKED; a failure carries its error."""
        record = await to_thread.run_sync(access.task, path_value(task_id))
        return await to_thread.run_sync(task_status, services, record)

    @delete("/tasks/{task_id:path}", status_code=200, responses=error_responses(401, 404, 422, 503))
    async def cancel(self, services: Services, access: Access, task_id: str = TASK_PARAM) -> TaskOut:
        """Cancel: a queued task never runs (its upload is removed); a running training stops at its next batch
        (nothing registered)."""
        record = await to_thread.run_sync(access.task, path_value(task_id))
        return await to_thread.run_sync(cancel_task, services, record)
