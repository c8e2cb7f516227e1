from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core import messages
from paglets.core.errors import HostError, NotHandledError, SerializationError
from paglets.core.messages import FutureReply, Message, ReplySet

WAIT = 5.0  # generous bound for waits that should succeed at once


# --- Message ---------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert (messages.SYNCHRONOUS, messages.FUTURE, messages.ONEWAY) == (0, 1, 2)
    assert (messages.MIN_PRIORITY, messages.NORMAL_PRIORITY, messages.MAX_PRIORITY) == (1, 5, 10)
    assert messages.REENTRANT_PRIORITY == 0xFFFFFFFF
    assert messages.SYSTEM_PRIORITY == messages.REENTRANT_PRIORITY - 1
    assert messages.REQUEST_PRIORITY == messages.SYSTEM_PRIORITY - 1
    assert messages.UNQUEUED_PRIORITY == 0
    assert {"_clone", "_dispatch", "_dispose", "_deactivate", "_revert"} == messages.RESERVED_KINDS
    assert messages.DEACTIVATE_KIND == messages.DEACTIVATE == "_deactivate"


def test_defaults() -> None:
    before = time.time()
    a, b = Message("ping"), Message("ping")
    assert a.args == {}
    assert a.args is not b.args
    assert a.arg is None
    assert a.sender is None
    assert a.reply_to is None
    assert a.priority == 5
    assert a.message_type == 0
    assert before <= a.timestamp <= time.time()
    assert len(a.message_id) == 32
    assert int(a.message_id, 16) >= 0
    assert a.message_id == a.message_id.lower()
    assert a.message_id != b.message_id


def test_is_slotted_and_mutable() -> None:
    msg = Message("k")
    with pytest.raises(AttributeError):
        msg.extra = 1  # type: ignore[attr-defined]
    msg.sender = "http://a"
    assert msg.sender == "http://a"


def test_args() -> None:
    msg = Message("k", arg=7)
    assert msg.set_arg("a", 1).set_arg("b", 2) is msg
    assert msg.get_arg("a") == 1
    assert msg.get_arg("missing", "dflt") == "dflt"
    assert msg.get_arg() == 7


def test_same_kind() -> None:
    msg = Message("k")
    assert msg.same_kind("k")
    assert msg.same_kind(Message("k"))
    assert not msg.same_kind("other")


def test_priority_steps_stay_in_range() -> None:
    msg = Message("k", priority=9)
    msg.increase_priority()
    msg.increase_priority()
    assert msg.priority == 10
    msg = Message("k", priority=2)
    msg.decrease_priority()
    msg.decrease_priority()
    assert msg.priority == 1
    msg = Message("k", priority=messages.UNQUEUED_PRIORITY)
    msg.increase_priority()
    assert msg.priority == 1


def test_wire_has_all_nine_fields_and_round_trips() -> None:
    msg = Message("k", {"x": b"\x00"}, arg=[1], sender="s", reply_to="r", priority=7, message_type=2)
    wire = msg.to_wire()
    assert set(wire) == {
        "kind",
        "args",
        "arg",
        "sender",
        "reply_to",
        "priority",
        "message_type",
        "timestamp",
        "message_id",
    }
    assert Message.from_wire(wire) == msg
    assert Message.from_wire(msgspec.msgpack.decode(msgspec.msgpack.encode(wire))) == msg


def test_to_wire_copies_args() -> None:
    msg = Message("k", {"a": 1})
    msg.to_wire()["args"]["a"] = 2
    assert msg.args == {"a": 1}


def test_from_wire_fills_defaults_and_regenerates_ids() -> None:
    msg = Message.from_wire({"kind": "k"})
    assert msg.args == {}
    assert msg.priority == 5
    assert msg.message_type == 0
    assert len(msg.message_id) == 32
    assert Message.from_wire({"kind": "k", "message_id": None}).message_id
    assert Message.from_wire({"kind": "k", "args": None}).args == {}
    assert Message.from_wire({"kind": "k", "priority": 3.0}).priority == 3


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {},
        {"kind": 3},
        {"kind": "k", "args": [1]},
        {"kind": "k", "priority": "high"},
        {"kind": "k", "priority": True},
        {"kind": "k", "sender": 5},
        {"kind": "k", "timestamp": "now"},
    ],
)
def test_from_wire_rejects_malformed_input(bad: object) -> None:
    with pytest.raises(SerializationError):
        Message.from_wire(bad)


wire_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=60)
@given(
    kind=st.text(max_size=20),
    args=st.dictionaries(st.text(max_size=8), wire_values, max_size=4),
    arg=wire_values,
    priority=st.integers(0, 2**32 - 1),
    sender=st.none() | st.text(max_size=20),
)
def test_wire_round_trip_property(
    kind: str, args: dict[str, object], arg: object, priority: int, sender: str | None
) -> None:
    msg = Message(kind, args, arg=arg, sender=sender, priority=priority)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(msg.to_wire()))
    assert Message.from_wire(decoded) == msg


# --- FutureReply -------------------------------------------------------------------------------------------


def test_future_reply_is_a_future() -> None:
    reply = FutureReply()
    assert isinstance(reply, Future)
    assert not reply.is_available()
    assert reply.wait_for_reply(timeout=0.01) is False
    reply.set_result("42")
    assert reply.is_available()
    assert reply.wait_for_reply() is True
    assert reply.get_reply() == "42"
    assert reply.get_int_reply() == 42
    assert reply.get_float_reply() == 42.0
    assert reply.get_string_reply() == "42"
    assert reply.get_boolean_reply() is True


def test_future_reply_timeout() -> None:
    with pytest.raises(TimeoutError):
        FutureReply().get_reply(timeout=0.01)


def test_future_reply_reraises_the_remote_error_class() -> None:
    reply = FutureReply()
    reply.set_exception(NotHandledError("no"))
    with pytest.raises(NotHandledError, match="no"):
        reply.get_reply()
    with pytest.raises(NotHandledError):
        reply.wait_for_reply()


def test_future_reply_wraps_another_future() -> None:
    source: Future[int] = Future()
    reply = FutureReply(source)
    assert not reply.done()
    source.set_result(5)
    assert reply.get_reply(timeout=WAIT) == 5

    failing: Future[int] = Future()
    wrapped = FutureReply(failing)
    failing.set_exception(HostError("x"))
    with pytest.raises(HostError):
        wrapped.get_reply(timeout=WAIT)

    cancelled: Future[int] = Future()
    follower = FutureReply(cancelled)
    cancelled.cancel()
    assert follower.cancelled()


# --- ReplySet ----------------------------------------------------------------------------------------------


def test_reply_set_counts() -> None:
    done, pending = FutureReply(), FutureReply()
    done.set_result(1)
    replies = ReplySet([done, pending])
    replies.add_future_reply(done)  # already tracked: no effect
    assert len(replies) == 2
    assert replies.count_available() == 1
    assert replies.count_unavailable() == 1
    assert replies.is_any_available()
    assert not replies.are_all_available()
    assert replies.has_more_future_replies()
    assert replies.wait_for_all_replies(timeout=0.01) is False
    pending.set_result(2)
    assert replies.are_all_available()
    assert replies.wait_for_all_replies(timeout=WAIT) is True


def test_get_next_consumes_in_completion_order() -> None:
    first, second, third = FutureReply(), FutureReply(), FutureReply()
    replies = ReplySet([first, second, third])
    assert replies.get_next_future_reply(timeout=0.01) is None
    third.set_result(3)
    first.set_result(1)
    assert replies.get_next_future_reply(timeout=WAIT) is third
    assert replies.get_next_future_reply(timeout=WAIT) is first
    assert replies.count_available() == 0
    assert replies.count_unavailable() == 1
    second.set_result(2)
    assert replies.wait_for_next_future_reply(timeout=WAIT) is True
    assert replies.get_next_future_reply(timeout=WAIT) is second
    assert not replies.has_more_future_replies()
    assert replies.wait_for_next_future_reply() is False  # nothing left: no wait
    assert replies.get_next_future_reply() is None


def test_iteration_follows_completion_order_across_threads() -> None:
    order = [3, 0, 4, 1, 2]
    replies = [FutureReply() for _ in order]
    gates = [threading.Event() for _ in order]

    def worker(index: int) -> None:
        assert gates[index].wait(WAIT)
        replies[index].set_result(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(order))]
    for thread in threads:
        thread.start()
    reply_set = ReplySet(replies)
    seen: list[int] = []
    for index in order:
        gates[index].set()
        reply = reply_set.get_next_future_reply(timeout=WAIT)
        assert reply is not None
        seen.append(reply.get_reply())
    for thread in threads:
        thread.join(WAIT)
    assert seen == order
    assert not reply_set.has_more_future_replies()


def test_iteration_waits_and_consumes() -> None:
    replies = [FutureReply() for _ in range(4)]
    reply_set = ReplySet(replies)

    def complete_backwards() -> None:
        for reply in reversed(replies):
            reply.set_result(id(reply))

    thread = threading.Thread(target=complete_backwards)
    thread.start()
    got = list(reply_set)
    thread.join(WAIT)
    assert got == list(reversed(replies))
    assert list(reply_set) == []
    assert len(reply_set) == 0


def test_failed_replies_are_handed_out_too() -> None:
    ok, bad = FutureReply(), FutureReply()
    bad.set_exception(HostError("boom"))
    ok.set_result("fine")
    got = list(ReplySet([ok, bad]))
    assert got == [ok, bad]
    with pytest.raises(HostError, match="boom"):
        got[1].get_reply()


def test_added_to_reports_a_reply_to_a_set() -> None:
    reply_set = ReplySet()
    reply = FutureReply()
    reply_set.add_future_reply(reply)
    assert reply_set.count_unavailable() == 1
    reply.set_result(None)
    assert reply_set.count_available() == 1
