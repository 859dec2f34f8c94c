"""Tenancy: every API key is a tenant; an id is checked, resolved and shown only to the tenant that made it.

Datasets and references are owned through the records' ``owners`` table, tasks (and so their outputs) through their
record, voices through the ``mockvox.owner`` tag MLflow keeps on the logged model and its registry versions. Another
tenant's id answers exactly as an unknown one (404), so nothing confirms that it exists. An admin key
(``admin_keys``) sees everything; without keys the one local user is the admin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from api.errors import ApiError
from api.records import Record

OWNER_TAG = "mockvox.owner"


def key_owner(key: str) -> str:
    """The tenant of an API key: a hash, so that no store holds a key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    owner: str  # key_owner of the key presented ("" without keys)
    admin: bool = False


class Access:
    """The ids a request names, each checked (format, existence, owner) before anything uses it."""

    def __init__(self, caller: Caller, state):
        self.caller, self.state = caller, state

    def sees(self, owner: str | None) -> bool:
        return self.caller.admin or (owner is not None and owner == self.caller.owner)

    def dataset(self, file_id: str, name: str = "file_id") -> str:
        from api.services import check_file_id

        file_id = check_file_id(file_id, name)
        if not self.state.store.exists(file_id) or not self.sees(self.state.records.owner_of("dataset", file_id)):
            raise ApiError(404, "dataset_not_found", file_id)
        return file_id

    def ref(self, ref_id: str, name: str = "ref_id"):
        """The reference's stored information (``RefOut``)."""
        from api.services import check_file_id

        ref_id = check_file_id(ref_id, name)
        info = self.state.refs.get(ref_id)
        if info is None or not self.sees(self.state.records.owner_of("ref", ref_id)):
            raise ApiError(404, "ref_not_found", ref_id)
        return info

    def refs(self, offset: int, limit: int) -> tuple[list, int]:
        """One page of the caller's references and their total (an admin: every reference)."""
        refs = self.state.refs
        if self.caller.admin:
            return refs.list(offset, limit)
        ids, total = self.state.records.owned("ref", self.caller.owner, offset, limit)
        return [info for info in map(refs.get, ids) if info is not None], total

    def ref_quota(self) -> None:
        """429 when the caller keeps ``limits.refs_per_key`` references already."""
        limit = self.state.settings.limits.refs_per_key
        if self.state.records.owned("ref", self.caller.owner, 0, 1)[1] >= limit:
            raise ApiError(429, "too_many_refs", limit=limit)

    def delete_ref(self, ref_id: str) -> bool:
        found = self.state.refs.delete(ref_id)
        self.state.records.disown("ref", ref_id)
        return found

    def task(self, task_id: str) -> Record:
        from api.services import check_task_id

        record = self.state.records.get(check_task_id(task_id))
        if record is None or not self.sees(record.owner):
            raise ApiError(404, "task_not_found", task_id)
        return record

    def model(self, ref: str) -> str:
        """The model id ``ref`` resolves to (``m-…``, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``)."""
        from mlflow.exceptions import MlflowException

        from api.services import check_model_ref

        model_id = self.state.resolve_model(check_model_ref(ref))  # ModelNotFound: 404
        if self.caller.admin:
            return model_id
        try:
            tags = self.state.registry.client.get_logged_model(model_id).tags or {}
        except MlflowException:
            tags = {}
        if tags.get(OWNER_TAG) != self.caller.owner:
            raise ApiError(404, "model_not_found", ref)
        return model_id

    def own(self, kind: str, item_id: str) -> None:
        self.state.records.own(kind, item_id, self.caller.owner)

    @property
    def model_filter(self) -> str | None:
        """The MLflow filter of the caller's voices (None: all)."""
        return None if self.caller.admin else f"tags.`{OWNER_TAG}` = '{self.caller.owner}'"
