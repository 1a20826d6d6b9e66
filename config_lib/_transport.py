"""The library's MQTT client: ``aiomqtt.Client`` with a cheaper per-packet path.

A process hosting many ConfigLibrary instances (a fleet, docs/config_lib.md "Many
libraries in one process") handles per update, per library, two packets in (envelope,
freshness record) and two out (the envelope's PUBACK, the applied report). aiomqtt 2.5
pays for each packet more than the packet itself costs:

* **out**: paho asks for a write callback whenever it queues a packet; aiomqtt answers
  with ``loop.call_soon_threadsafe(loop.add_writer, ...)`` (a write to the loop's
  self-pipe, a wake-up, an ``epoll_ctl`` to watch the socket, a loop turn to learn it is
  writable, another ``epoll_ctl`` to stop watching). Here, when paho asks on the event
  loop's own thread, the packets are written in the next loop turn (``call_soon``, no
  self-pipe, no ``epoll_ctl``); only if the socket cannot take them all (``EAGAIN``) is
  it watched for writability, as aiomqtt does. From another thread (paho's connect runs
  in an executor) aiomqtt's own path is kept;
* **in**: ``client.messages`` creates a task and runs ``asyncio.wait`` for every
  message (to notice a disconnection while waiting), and each message becomes an
  aiomqtt ``Message`` and ``Topic``. :meth:`LibraryClient.next_message` awaits the
  message queue itself and returns (topic, payload); a disconnection puts a marker in
  the queue, after the messages already received, and raises the same ``MqttError``;
* **matching**: paho matches every message's topic against its per-filter callbacks
  (``message_callback_add``, unused here): skipped while there are none.

Nothing else changes: same packets, same order, same QoS. This leans on private members
of aiomqtt (``_loop``, ``_queue``, ``_disconnected``, ``_client``) and paho
(``_on_message_filtered``), both pinned in constraints.txt;
tests/lib/test_lib_fanout_path.py and every tests/lib test drive it against mosquitto.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Final, cast

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.matcher import MQTTMatcher

__all__ = ["LibraryClient"]

_CLOSED: Final = object()  # queued after the last message once the connection is gone


class _Filters(MQTTMatcher):
    """paho's per-filter message callbacks (``message_callback_add``, which neither
    aiomqtt nor the library uses): matched against each message's topic only when there
    are any, instead of walking the empty trie with a generator for every message."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        if not self._root._children:
            return iter(())
        return cast(Iterator[Any], super().iter_match(topic))  # type: ignore[no-untyped-call]


class LibraryClient(aiomqtt.Client):
    """``aiomqtt.Client`` for ConfigLibrary sessions (see module doc). Created, entered and
    read on one event loop, as aiomqtt requires."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loop_thread = threading.get_ident()  # aiomqtt's __init__ is on the loop
        self._flush_due = False
        self._writer_added = False  # the socket may be watched for writability
        self._watching = False  # a marker callback is on the current `_disconnected`
        self._client._on_message_filtered = _Filters()  # type: ignore[no-untyped-call]

    # -- out ---------------------------------------------------------------------------

    def _on_socket_register_write(
        self,
        client: mqtt.Client,
        userdata: Any,
        sock: Any,
    ) -> None:
        if threading.get_ident() != self._loop_thread:
            self._writer_added = True
            super()._on_socket_register_write(client, userdata, sock)
            return
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush, sock)

    def _flush(self, sock: Any) -> None:
        """Write what paho has queued; watch the socket only if it could not take it all."""
        self._flush_due = False
        client = self._client
        try:
            client.loop_write()
        except Exception as exc:
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)
            return
        # paho still believes a write callback is registered (it asked for one and the
        # socket is not drained): watch the socket, aiomqtt's way.
        current = client.socket()
        if client.want_write() and current is not None and current is sock:
            fd = current.fileno()
            if fd >= 0:
                self._writer_added = True
                self._loop.add_writer(fd, self._write_ready)

    def _on_socket_unregister_write(
        self,
        client: mqtt.Client,
        userdata: Any,
        sock: Any,
    ) -> None:
        # Written in the next loop turn without watching the socket: nothing to unwatch
        # (paho asks after every write; asyncio's remove_writer is not free).
        if self._writer_added:
            self._writer_added = False
            super()._on_socket_unregister_write(client, userdata, sock)

    def _write_ready(self) -> None:
        try:
            self._client.loop_write()  # unregisters (remove_writer) once drained
        except Exception as exc:
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)

    # -- in ----------------------------------------------------------------------------

    def _on_message(
        self,
        client: mqtt.Client,
        userdata: Any,
        message: mqtt.MQTTMessage,
    ) -> None:
        # Only what the library reads: no aiomqtt Message and Topic built per message.
        self._queue.put_nowait((message.topic, message.payload))  # type: ignore[arg-type]

    async def next_message(self) -> tuple[str, bytes]:
        """The next message received, as (topic, payload), in order; raises ``MqttError``
        once the connection is gone and every message received before is taken (as
        ``client.messages`` does). ``client.messages`` is not to be used."""
        disconnected = self._disconnected
        if not self._watching:
            self._watching = True
            disconnected.add_done_callback(self._mark_closed)
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(item)  # every later call raises too
            exc = disconnected.exception() if not disconnected.cancelled() else None
            raise aiomqtt.MqttError("Disconnected during message iteration") from exc
        return item  # type: ignore[return-value]

    def _mark_closed(self, _: object) -> None:
        self._queue.put_nowait(_CLOSED)  # type: ignore[arg-type]
