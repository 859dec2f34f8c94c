"""Tasks: status with progress, and cancellation."""

from __future__ import annotations

from anyio import to_thread
from litestar import Controller, Request, delete, get
from litestar.params import Parameter

from api.controllers import TASK_ID, options_for, path_value
from api.errors import ApiError
from api.schemas import TaskOut, error_responses
from api.services import FINISHED, check_task_id, task_status

TASK_PARAM = Parameter(schema_extra={"pattern": TASK_ID})


def _record(request: Request, task_id: str):
    record = request.app.state.records.get(task_id)
    if record is None:
        raise ApiError(404, "task_not_found", task_id)
    return record


class TaskController(Controller):
    tags = ["tasks"]
    options = options_for("/tasks/{task_id:path}", "DELETE, GET, OPTIONS")

    @get("/tasks/{task_id:path}", responses=error_responses(401, 404, 422, 503))
    async def status(self, request: Request, task_id: str = TASK_PARAM) -> TaskOut:
        """``status`` is PENDING, STARTED, PROGRESS, SUCCESS, FAILURE or REVOKED; a failure carries its error."""
        record = _record(request, check_task_id(path_value(task_id)))
        return await to_thread.run_sync(task_status, request, record)

    @delete("/tasks/{task_id:path}", status_code=200, responses=error_responses(401, 404, 422, 503))
    async def cancel(self, request: Request, task_id: str = TASK_PARAM) -> TaskOut:
        """Cancel: a queued task never runs; a running training stops at its next batch (nothing registered)."""
        state, task_id = request.app.state, check_task_id(path_value(task_id))
        record = _record(request, task_id)
        current = await to_thread.run_sync(task_status, request, record)
        if current.status in FINISHED:
            return current
        state.records.request_cancel(task_id)
        try:
            await to_thread.run_sync(lambda: state.celery.control.revoke(task_id))
        except Exception:  # brokers without broadcast (sqlite): the worker reads the records' flag instead
            pass
        return await to_thread.run_sync(task_status, request, state.records.get(task_id))
