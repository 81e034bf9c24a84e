#!/usr/bin/env python3
"""A chat backend in Python calling the roomhooks sidecar, with the four example apps connected.

It generates its gRPC stubs at run time from ../../../proto (grpcio-tools bundles protoc and the
Google well-known .proto files), plays four scenarios and checks every answer: it prints what it
got, and exits 1 listing every difference from what the example apps should answer.

Usage: python backend.py [ADDR] [--wait-for-apps SECONDS] [--only-wait]
ADDR defaults to $ROOMHOOKS_ADDR, then 127.0.0.1:50051.
"""

import argparse
import importlib
import importlib.resources
import json
import os
import pathlib
import sys
import tempfile
import time
import uuid

import grpc
from google.protobuf import json_format

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[3] / "proto"
DEADLINE_SECONDS = 5.0
EXPECTED_APPS = ["word-filter", "extender", "slug-normaliser", "audit-logger"]


def load_stubs(out_dir):
    """Compiles proto/roomhooks/v1/*.proto into out_dir and imports the generated modules."""
    from grpc_tools import protoc

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "roomhooks" / "v1").glob("*.proto"))
    if not files:
        sys.exit(f"no .proto files under {PROTO_ROOT}")
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(args + files) != 0:
        sys.exit(f"protoc could not compile {files}")
    sys.path.insert(0, out_dir)
    names = ["room_pb2", "hooks_pb2", "hooks_pb2_grpc", "admin_pb2", "admin_pb2_grpc"]
    return argparse.Namespace(**{n: importlib.import_module(f"roomhooks.v1.{n}") for n in names})


class Checks:
    """Collects the differences between what the sidecar answered and what was expected."""

    def __init__(self):
        self.differences = []

    def expect(self, what, got, want):
        if got != want:
            self.differences.append(f"{what}: got {got!r}, want {want!r}")


def enum_name(enum, value):
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


def show(pb, title, response):
    """Prints a verdict, one line per app outcome and one per warning for the user."""
    if not hasattr(response, "allowed"):
        verdict = "accepted"
    elif response.allowed:
        verdict = "allowed"
    else:
        verdict = "PREVENTED: " + (response.preventions[0].message if response.preventions else "(no message)")
    print(f"{title}: {verdict}")
    for o in response.outcomes:
        hook = enum_name(pb.room_pb2.HookInterface, o.hook).removeprefix("HOOK_INTERFACE_")
        status = enum_name(pb.hooks_pb2.OutcomeStatus, o.status).removeprefix("OUTCOME_STATUS_")
        print(f"    {o.app_id:<16} {hook:<24} {status:<10} {o.duration_us:>7} us  {o.detail}")
    for w in getattr(response, "warnings", []):
        print(f"    warning from {w.app_id}: {w.message}")


def statuses(pb, response):
    return [(o.app_id, enum_name(pb.hooks_pb2.OutcomeStatus, o.status)) for o in response.outcomes]


def user(pb, username):
    return pb.room_pb2.User(id=f"u-{username}", username=username, name=username.title())


def wait_for_apps(pb, admin, seconds):
    """Polls Admin.ListApps until every example app has a connected instance, for at most `seconds`."""
    give_up = time.monotonic() + seconds
    while True:
        try:
            apps = admin.ListApps(pb.admin_pb2.ListAppsRequest(), timeout=DEADLINE_SECONDS).apps
            connected = sorted(a.app_id for a in apps if a.instances)
            if all(name in connected for name in EXPECTED_APPS):
                print(f"{len(connected)} apps connected: {', '.join(connected)}")
                return
            seen = f"connected so far: {connected}"
        except grpc.RpcError as err:
            seen = f"ListApps failed: {err.code().name} {err.details()}"
        if time.monotonic() >= give_up:
            sys.exit(f"the example apps did not all connect within {seconds} s ({seen})")
        time.sleep(0.2)


def run_scenarios(pb, hooks, checks):
    Room, RoomType = pb.room_pb2.Room, pb.room_pb2.RoomType
    owner = user(pb, "owner")

    # (a) A room every app lets through: extended, then re-slugged.
    party = Room(display_name="Launch Party", slugified_name="Launch Party!", type=RoomType.ROOM_TYPE_CHANNEL,
                 creator=owner, member_usernames=["owner"])
    created = hooks.PreRoomCreate(pb.hooks_pb2.PreRoomCreateRequest(room=party, request_id="py-create-1"),
                                  timeout=DEADLINE_SECONDS)
    show(pb, 'PreRoomCreate "Launch Party"', created)
    room = json_format.MessageToDict(created.room)
    print("    final room: " + json.dumps(room, ensure_ascii=False))
    checks.expect("create: allowed", created.allowed, True)
    checks.expect("create: custom field created_via", room.get("customFields", {}).get("created_via"), "roomhooks")
    checks.expect("create: slug", created.room.slugified_name, "launch-party")
    checks.expect("create: members", list(created.room.member_usernames), ["owner", "welcome-bot"])
    checks.expect("create: outcomes", statuses(pb, created), [
        ("word-filter", "OUTCOME_STATUS_ALLOWED"),
        ("extender", "OUTCOME_STATUS_CHANGED"),
        ("slug-normaliser", "OUTCOME_STATUS_CHANGED"),
    ])

    # (b) A room the word filter vetoes.
    spam = Room(display_name="spam corner", type=RoomType.ROOM_TYPE_CHANNEL, creator=owner)
    vetoed = hooks.PreRoomCreate(pb.hooks_pb2.PreRoomCreateRequest(room=spam, request_id="py-create-2"),
                                 timeout=DEADLINE_SECONDS)
    show(pb, 'PreRoomCreate "spam corner"', vetoed)
    checks.expect("spam: allowed", vetoed.allowed, False)
    checks.expect("spam: first prevention", [(p.app_id, p.message) for p in vetoed.preventions][:1],
                  [("word-filter", 'Room names may not contain "spam".')])

    # (b') A room the word filter allows with a warning to show the user.
    loud = Room(display_name="ALL HANDS", type=RoomType.ROOM_TYPE_CHANNEL, creator=owner)
    warned = hooks.PreRoomCreate(pb.hooks_pb2.PreRoomCreateRequest(room=loud, request_id="py-create-3"),
                                 timeout=DEADLINE_SECONDS)
    show(pb, 'PreRoomCreate "ALL HANDS"', warned)
    checks.expect("capitals: allowed", warned.allowed, True)
    checks.expect("capitals: warnings", [(w.app_id, w.message) for w in warned.warnings],
                  [("word-filter", "Room names in capitals may read as shouting.")])

    # (c) Joins: alice is welcome, troll is banned.
    stored = Room(id="r-launch-party", display_name="Launch Party", slugified_name="launch-party",
                  type=RoomType.ROOM_TYPE_CHANNEL, creator=owner, member_usernames=["owner", "welcome-bot"])
    for name, allowed, message in [("alice", True, None), ("troll", False, "troll is banned from this server.")]:
        context = pb.room_pb2.RoomUserJoined(room=stored, joining_user=user(pb, name))
        joined = hooks.PreRoomUserJoin(pb.hooks_pb2.PreRoomUserJoinRequest(context=context, request_id=f"py-join-{name}"),
                                       timeout=DEADLINE_SECONDS)
        show(pb, f'PreRoomUserJoin "{name}"', joined)
        checks.expect(f"join {name}: allowed", joined.allowed, allowed)
        checks.expect(f"join {name}: message", joined.preventions[0].message if joined.preventions else None, message)
        checks.expect(f"join {name}: outcomes", statuses(pb, joined),
                      [("word-filter", "OUTCOME_STATUS_ALLOWED" if allowed else "OUTCOME_STATUS_PREVENTED")])

    # (d) A post event, waiting until the audit logger acknowledged it.
    event_id = f"py-{uuid.uuid4()}"
    posted = hooks.PostRoomCreate(pb.hooks_pb2.PostRoomCreateRequest(room=stored, event_id=event_id, wait_for_delivery=True),
                                  timeout=DEADLINE_SECONDS)
    show(pb, f"PostRoomCreate {posted.event_id} (subscribed apps: {posted.subscribed_apps})", posted)
    checks.expect("post: event id", posted.event_id, event_id)
    checks.expect("post: subscribed apps", posted.subscribed_apps, 1)
    checks.expect("post: outcomes", statuses(pb, posted), [("audit-logger", "OUTCOME_STATUS_DELIVERED")])

    # (e) Several post events in one PostEvents call; one result per event, in order.
    batch_ids = [f"py-{uuid.uuid4()}" for _ in range(3)]
    items = [pb.hooks_pb2.PostEventsItem(room_create=pb.hooks_pb2.PostRoomCreateRequest(
        room=stored, event_id=i, wait_for_delivery=True)) for i in batch_ids]
    batch = hooks.PostEvents(pb.hooks_pb2.PostEventsRequest(events=items), timeout=DEADLINE_SECONDS)
    for result in batch.results:
        show(pb, f"PostEvents item {result.event_id}", result)
    checks.expect("batch: event ids", [r.event_id for r in batch.results], batch_ids)
    checks.expect("batch: outcomes", [statuses(pb, r) for r in batch.results],
                  [[("audit-logger", "OUTCOME_STATUS_DELIVERED")]] * 3)

    # (f) One invalid event refuses the whole batch, naming it.
    invalid = [items[0], pb.hooks_pb2.PostEventsItem(room_create=pb.hooks_pb2.PostRoomCreateRequest(
        room=Room(display_name="no id")))]
    try:
        hooks.PostEvents(pb.hooks_pb2.PostEventsRequest(events=invalid), timeout=DEADLINE_SECONDS)
        checks.expect("invalid batch: refused", "accepted", "INVALID_ARGUMENT")
    except grpc.RpcError as err:
        print(f"\n=== PostEvents with an invalid event\n{err.code().name}: {err.details()}")
        checks.expect("invalid batch: code", err.code().name, "INVALID_ARGUMENT")
        checks.expect("invalid batch: names the event", err.details().startswith("events[1].room.id"), True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr", nargs="?", default=os.environ.get("ROOMHOOKS_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--wait-for-apps", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS until the four example apps are connected")
    parser.add_argument("--only-wait", action="store_true", help="exit after the wait")
    args = parser.parse_args()
    addr = args.addr.removeprefix("http://")

    with tempfile.TemporaryDirectory(prefix="roomhooks-stubs-") as out_dir:
        pb = load_stubs(out_dir)
    with grpc.insecure_channel(addr) as channel:
        admin = pb.admin_pb2_grpc.AdminStub(channel)
        wait_for_apps(pb, admin, args.wait_for_apps)
        if args.only_wait:
            return 0
        checks = Checks()
        try:
            run_scenarios(pb, pb.hooks_pb2_grpc.RoomHooksStub(channel), checks)
        except grpc.RpcError as err:
            checks.differences.append(f"a call failed: {err.code().name}: {err.details()}")
    if checks.differences:
        print("\npython backend: FAILED, the sidecar's answers differ from the expected ones:", file=sys.stderr)
        for difference in checks.differences:
            print(f"  - {difference}", file=sys.stderr)
        return 1
    print(f"\npython backend: all checks passed ({addr})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
