"""How remote-write partitions split the publishers and how many leases a receiver takes."""

from __future__ import annotations

import zlib

from prometheus_streams import wire
from prometheus_streams.receiver.lane import partition_of
from prometheus_streams.transport.lease import Lease
from prometheus_streams.transport.share import Share


def test_a_message_belongs_to_its_publishers_partition() -> None:
    subject = wire.subject_for("prometheus", "dc4", "node", "web-1")
    assert partition_of("prometheus", subject, 2) == zlib.crc32(b"dc4") % 2 == 1
    # Every scrape of one publisher, whatever its job and instance, goes to one partition.
    seen = {
        partition_of("prometheus", wire.subject_for("prometheus", "dc 7", job, inst), 5)
        for job in ("node", "app")
        for inst in ("a", "b:9100")
    }
    assert len(seen) == 1


def test_a_topic_with_dots_and_foreign_subjects() -> None:
    subject = wire.subject_for("metrics.prod", "dc4", "node", "web-1")
    assert partition_of("metrics.prod", subject, 2) == 1
    assert partition_of("metrics.prod", "other.dc4.node.web-1", 2) is None


def _share(leases: int, members: int, held: int) -> Share:
    share = Share(lambda: None, "PROMETHEUS.central-rw-store", "me")  # type: ignore[arg-type,return-value]
    for index in range(leases):
        lease = Lease(lambda: None, f"k{index}", "me")  # type: ignore[arg-type,return-value]
        share.add(lease)
        if index < held:
            lease._revision, lease._valid_until = 1, float("inf")
    share.members = members
    return share


def test_each_receiver_takes_its_fair_share() -> None:
    assert _share(4, 2, 1).may_take()
    assert not _share(4, 2, 2).may_take()
    assert _share(3, 2, 1).may_take()  # ceil(3 / 2) = 2
    assert not _share(2, 3, 1).may_take()  # more receivers than partitions: one each at most
    assert _share(2, 1, 1).may_take()  # alone: all of them
