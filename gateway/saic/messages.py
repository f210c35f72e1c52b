"""The account's message list, read as upstream reads it: new messages marked read, old vehicle-start
messages deleted (SAIC keeps one per start, and they would fill the list)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.api.message.schema import MessageEntity, MessageResp
from saic_ismart_client_ng.exceptions import SaicApiException

from gateway.saic.session import SaicSession
from gateway.source import VEHICLE_START, VehicleMessage

log = logging.getLogger(__name__)

PAGE_SIZE = 10
MAX_PAGES = 5
"""At most this many pages a check: 50 messages are more than a minute of any account's alarms."""


def vehicle_message(entity: MessageEntity) -> VehicleMessage:
    # SAIC sends local wall-clock times without a zone; upstream reads them as the host's local time.
    at = entity.message_time.astimezone(UTC).replace(microsecond=0)
    return VehicleMessage(
        id=str(entity.messageId),
        vin=entity.vin,
        type=entity.messageType or "",
        title=entity.title or "",
        content=entity.content or "",
        sender=entity.sender or "",
        time=at,
        status=entity.read_status,
    )


async def _alarms(api: SaicApi, *, page: int) -> MessageResp | None:
    return await api.get_alarm_list(page_num=page, page_size=PAGE_SIZE)


class MessageInbox:
    def __init__(self, session: SaicSession) -> None:
        self.session = session
        self.last_seen = datetime.min.replace(tzinfo=UTC)
        self.last_id: str | None = None

    async def check(self) -> list[VehicleMessage]:
        entities = [e for e in await self._newest_first() if e.messageId is not None]
        for entity in entities:
            if entity.read_status != "read":
                await self._update("read_message", entity)
        arrived = sorted(((vehicle_message(e), e) for e in entities), key=lambda pair: pair[0].time)
        messages = [message for message, _ in arrived]
        new = [m for m in messages if m.time > self.last_seen or (m.time == self.last_seen and m.id != self.last_id)]
        if messages:
            self.last_seen, self.last_id = messages[-1].time, messages[-1].id
        for message, entity in arrived[:-1]:
            if message.type == VEHICLE_START:
                await self._update("delete_message", entity)
        return new

    async def _newest_first(self) -> list[MessageEntity]:
        found: list[MessageEntity] = []
        for page in range(1, MAX_PAGES + 1):
            reply = await self.session.call("message_list", partial(_alarms, page=page))
            batch = reply.messages if reply is not None else []
            found.extend(batch)
            oldest = min((vehicle_message(e).time for e in batch), default=None)
            if len(batch) < PAGE_SIZE or oldest is None or oldest <= self.last_seen:
                break
        return found

    async def _update(self, operation: str, entity: MessageEntity) -> None:
        message_id = entity.messageId  # as SAIC sent it, a number or a string
        if message_id is None:
            return
        try:
            if operation == "read_message":
                await self.session.call(operation, lambda api: api.read_message(message_id=message_id))
            else:
                await self.session.call(operation, lambda api: api.delete_message(message_id=message_id))
        except SaicApiException as exc:
            log.warning("could not %s %s: %s", operation.replace("_", " "), message_id, exc)
