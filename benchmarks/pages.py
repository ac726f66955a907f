"""Deterministic exposition pages: a node_exporter-like page and a 10,000-series page.

The node page mirrors what node_exporter 1.x serves on a small Linux host
(families, HELP/TYPE lines, label sets and value shapes), about 500 samples
and 57 KB; the big page is an application with 10,000 histogram series, about
1 MB. Both are the same bytes on every call, so runs are comparable.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

Labels = Sequence[tuple[str, str]]


class _Page:
    def __init__(self, seed: int) -> None:
        self.lines: list[str] = []
        self.samples = 0
        self.rng = random.Random(seed)  # noqa: S311 - deterministic filler values, not secrets

    def family(
        self, name: str, kind: str, help_text: str, series: Iterable[tuple[Labels, float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in series:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: Labels, value: float) -> None:
        text = ",".join(f'{k}="{v}"' for k, v in labels)
        shown = str(int(value)) if float(value).is_integer() else repr(float(value))
        self.lines.append(f"{name}{{{text}}} {shown}" if text else f"{name} {shown}")
        self.samples += 1

    def value(self, scale: float = 1e6) -> float:
        value = self.rng.uniform(0, scale)
        return round(value, 3) if scale >= 1000 else value

    def text(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


_GO_MEMSTATS = (
    ("alloc_bytes", "Number of bytes allocated and still in use."),
    ("alloc_bytes_total", "Total number of bytes allocated, even if freed."),
    ("buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table."),
    ("frees_total", "Total number of frees."),
    ("gc_sys_bytes", "Number of bytes used for garbage collection system metadata."),
    ("heap_alloc_bytes", "Number of heap bytes allocated and still in use."),
    ("heap_idle_bytes", "Number of heap bytes waiting to be used."),
    ("heap_inuse_bytes", "Number of heap bytes that are in use."),
    ("heap_objects", "Number of allocated objects."),
    ("heap_released_bytes", "Number of heap bytes released to OS."),
    ("heap_sys_bytes", "Number of heap bytes obtained from system."),
    ("last_gc_time_seconds", "Number of seconds since 1970 of last garbage collection."),
    ("lookups_total", "Total number of pointer lookups."),
    ("mallocs_total", "Total number of mallocs."),
    ("mcache_inuse_bytes", "Number of bytes in use by mcache structures."),
    ("mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system."),
    ("mspan_inuse_bytes", "Number of bytes in use by mspan structures."),
    ("mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system."),
    ("next_gc_bytes", "Number of heap bytes when next garbage collection will take place."),
    ("other_sys_bytes", "Number of bytes used for other system allocations."),
    ("stack_inuse_bytes", "Number of bytes in use by the stack allocator."),
    ("stack_sys_bytes", "Number of bytes obtained from system for stack allocator."),
    ("sys_bytes", "Number of bytes obtained from system."),
)
_SOCKSTAT = (
    "FRAG6_inuse",
    "FRAG_inuse",
    "RAW6_inuse",
    "RAW_inuse",
    "TCP6_inuse",
    "TCP_alloc",
    "TCP_inuse",
    "TCP_mem",
    "TCP_mem_bytes",
    "TCP_orphan",
    "TCP_tw",
    "UDP6_inuse",
    "UDPLITE_inuse",
    "UDP_inuse",
    "UDP_mem",
    "sockets_used",
)
_TIMEX = (
    "estimated_error_seconds",
    "frequency_adjustment_ratio",
    "loop_time_constant",
    "maxerror_seconds",
    "offset_seconds",
    "pps_calibration_total",
    "pps_error_total",
    "pps_frequency_hertz",
    "pps_jitter_seconds",
    "status",
    "sync_status",
    "tai_offset_seconds",
    "tick_seconds",
)
_INFO: tuple[tuple[str, str, Labels], ...] = (
    (
        "node_dmi_info",
        "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, "
        "bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, "
        "chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, "
        "product_name, product_serial, product_sku, product_uuid, product_version, "
        "system_vendor if provided by DMI.",
        (
            ("bios_date", "04/01/2014"),
            ("bios_release", "0.0"),
            ("bios_vendor", "SeaBIOS"),
            ("bios_version", "1.16.2-debian-1.16.2-1"),
            ("board_vendor", "Supermicro"),
            ("chassis_vendor", "QEMU"),
            ("chassis_version", "pc-q35-8.1"),
            ("product_family", "Standard PC"),
            ("product_name", "Standard PC (Q35 + ICH9, 2009)"),
            ("product_uuid", "5d0d7cc4-49b6-4d6c-9a3f-6a3c0c3f8e21"),
            ("product_version", "pc-q35-8.1"),
            ("system_vendor", "QEMU"),
        ),
    ),
    (
        "node_os_info",
        "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, "
        "image_version, name, pretty_name, variant, variant_id, version, version_codename, "
        "version_id.",
        (
            ("build_id", ""),
            ("id", "debian"),
            ("id_like", ""),
            ("name", "Debian GNU/Linux"),
            ("pretty_name", "Debian GNU/Linux 12 (bookworm)"),
            ("version", "12 (bookworm)"),
            ("version_codename", "bookworm"),
            ("version_id", "12"),
        ),
    ),
    (
        "node_exporter_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion "
        "from which node_exporter was built, and the goos and goarch for the build.",
        (
            ("branch", "HEAD"),
            ("goarch", "amd64"),
            ("goos", "linux"),
            ("goversion", "go1.21.5"),
            ("revision", "ff7f9d69b645cb691dd3e84dc3afc88f5c006962"),
            ("tags", "netgo osusergo static_build"),
            ("version", "1.7.0"),
        ),
    ),
)
_CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
_DISKS = ("sda", "sdb", "nvme0n1", "dm-0")
_DISK_COUNTERS = (
    ("reads_completed_total", "The total number of reads completed successfully."),
    ("reads_merged_total", "The total number of reads merged."),
    ("read_bytes_total", "The total number of bytes read successfully."),
    ("read_time_seconds_total", "The total number of seconds spent by all reads."),
    ("writes_completed_total", "The total number of writes completed successfully."),
    ("writes_merged_total", "The number of writes merged."),
    ("written_bytes_total", "The total number of bytes written successfully."),
    ("write_time_seconds_total", "This is the total number of seconds spent by all writes."),
    ("io_time_seconds_total", "Total seconds spent doing I/Os."),
    ("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os."),
    ("discards_completed_total", "The total number of discards completed successfully."),
    ("discarded_sectors_total", "The total number of sectors discarded successfully."),
    ("flush_requests_total", "The total number of flush requests completed successfully"),
)
_FILESYSTEMS = (
    ("/dev/sda1", "ext4", "/"),
    ("/dev/sda2", "ext4", "/var/lib/docker"),
    ("/dev/sdb1", "xfs", "/srv/data/postgresql"),
    ("tmpfs", "tmpfs", "/run"),
    ("tmpfs", "tmpfs", "/dev/shm"),  # noqa: S108 - a label value, not a path we use
    ("/dev/mapper/vg0-home", "ext4", "/home"),
)
_FS_GAUGES = (
    ("avail_bytes", "Filesystem space available to non-root users in bytes."),
    ("files", "Filesystem total file nodes."),
    ("files_free", "Filesystem total free file nodes."),
    ("free_bytes", "Filesystem free space in bytes."),
    ("readonly", "Filesystem read-only status."),
    ("size_bytes", "Filesystem size in bytes."),
    ("device_error", "Whether an error occurred while getting statistics for the given device."),
)
_NICS = ("enp3s0f0", "enp3s0f1", "lo", "docker0")
_NET_COUNTERS = (
    "receive_bytes",
    "receive_compressed",
    "receive_drop",
    "receive_errs",
    "receive_fifo",
    "receive_frame",
    "receive_multicast",
    "receive_packets",
    "transmit_bytes",
    "transmit_carrier",
    "transmit_colls",
    "transmit_compressed",
    "transmit_drop",
    "transmit_errs",
    "transmit_fifo",
    "transmit_packets",
)
_NET_GAUGES = ("mtu_bytes", "speed_bytes", "up", "carrier", "transmit_queue_length", "flags")
_MEMORY = (
    "Active",
    "Active_anon",
    "Active_file",
    "AnonHugePages",
    "AnonPages",
    "Bounce",
    "Buffers",
    "Cached",
    "CommitLimit",
    "Committed_AS",
    "DirectMap1G",
    "DirectMap2M",
    "DirectMap4k",
    "Dirty",
    "HardwareCorrupted",
    "HugePages_Free",
    "HugePages_Rsvd",
    "HugePages_Surp",
    "HugePages_Total",
    "Hugepagesize",
    "Inactive",
    "Inactive_anon",
    "Inactive_file",
    "KernelStack",
    "Mapped",
    "MemAvailable",
    "MemFree",
    "MemTotal",
    "Mlocked",
    "NFS_Unstable",
    "PageTables",
    "Percpu",
    "SReclaimable",
    "SUnreclaim",
    "ShmemHugePages",
    "ShmemPmdMapped",
    "Shmem",
    "Slab",
    "SwapCached",
    "SwapFree",
    "SwapTotal",
    "Unevictable",
    "VmallocChunk",
    "VmallocTotal",
    "VmallocUsed",
    "Writeback",
    "WritebackTmp",
)
_VMSTAT = (
    "oom_kill",
    "pgfault",
    "pgmajfault",
    "pgpgin",
    "pgpgout",
    "pswpin",
    "pswpout",
)
_NETSTAT = (
    "Icmp6_InErrors",
    "Icmp6_InMsgs",
    "Icmp6_OutMsgs",
    "Icmp_InErrors",
    "Icmp_InMsgs",
    "Icmp_OutMsgs",
    "Ip6_InOctets",
    "Ip6_OutOctets",
    "IpExt_InOctets",
    "IpExt_OutOctets",
    "Ip_Forwarding",
    "TcpExt_ListenDrops",
    "TcpExt_ListenOverflows",
    "TcpExt_SyncookiesFailed",
    "TcpExt_SyncookiesRecv",
    "TcpExt_SyncookiesSent",
    "TcpExt_TCPSynRetrans",
    "TcpExt_TCPTimeouts",
    "Tcp_ActiveOpens",
    "Tcp_CurrEstab",
    "Tcp_InErrs",
    "Tcp_InSegs",
    "Tcp_OutRsts",
    "Tcp_OutSegs",
    "Tcp_PassiveOpens",
    "Tcp_RetransSegs",
    "Udp6_InDatagrams",
    "Udp6_InErrors",
    "Udp6_NoPorts",
    "Udp6_OutDatagrams",
    "Udp6_RcvbufErrors",
    "Udp6_SndbufErrors",
    "UdpLite6_InErrors",
    "UdpLite_InErrors",
    "Udp_InDatagrams",
    "Udp_InErrors",
    "Udp_NoPorts",
    "Udp_OutDatagrams",
    "Udp_RcvbufErrors",
    "Udp_SndbufErrors",
)
_COLLECTORS = (
    "arp",
    "bcache",
    "bonding",
    "btrfs",
    "conntrack",
    "cpu",
    "cpufreq",
    "diskstats",
    "dmi",
    "edac",
    "entropy",
    "fibrechannel",
    "filefd",
    "filesystem",
    "hwmon",
    "infiniband",
    "ipvs",
    "loadavg",
    "mdadm",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "nfs",
    "nfsd",
    "nvme",
    "os",
    "powersupplyclass",
    "pressure",
    "rapl",
    "schedstat",
    "selinux",
    "sockstat",
    "softnet",
    "stat",
    "tapestats",
    "textfile",
    "thermal_zone",
    "time",
    "timex",
    "udp_queues",
    "uname",
    "vmstat",
    "xfs",
    "zfs",
)


def node_page(cpus: int = 4) -> bytes:
    """A node_exporter-like page: about 500 samples, about 57 KB."""
    p = _Page(seed=9100)
    p.family(
        "go_gc_duration_seconds",
        "summary",
        "A summary of the pause duration of garbage collection cycles.",
        [((("quantile", q),), p.value(1e-3)) for q in ("0", "0.25", "0.5", "0.75", "1")],
    )
    p.sample("go_gc_duration_seconds_sum", (), 0.731)
    p.sample("go_gc_duration_seconds_count", (), 4213)
    p.family("go_goroutines", "gauge", "Number of goroutines that currently exist.", [((), 8)])
    p.family(
        "go_info",
        "gauge",
        "Information about the Go environment.",
        [((("version", "go1.21.5"),), 1)],
    )
    for name, help_text in _GO_MEMSTATS:
        kind = "counter" if name.endswith("_total") else "gauge"
        p.family(f"go_memstats_{name}", kind, help_text, [((), p.value())])
    p.family(
        "node_cpu_guest_seconds_total",
        "counter",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        [((("cpu", str(c)), ("mode", m)), 0) for c in range(cpus) for m in ("nice", "user")],
    )
    p.family(
        "node_cpu_seconds_total",
        "counter",
        "Seconds the CPUs spent in each mode.",
        [((("cpu", str(c)), ("mode", m)), p.value(1e7)) for c in range(cpus) for m in _CPU_MODES],
    )
    p.family(
        "node_cpu_scaling_frequency_hertz",
        "gauge",
        "Current scaled CPU thread frequency in hertz.",
        [((("cpu", str(c)),), 2.4e9 + c * 1e6) for c in range(cpus)],
    )
    for suffix, help_text in _DISK_COUNTERS:
        p.family(
            f"node_disk_{suffix}",
            "counter",
            help_text,
            [((("device", d),), p.value(1e10)) for d in _DISKS],
        )
    p.family(
        "node_disk_info",
        "gauge",
        "Info of /sys/block/<block_device>.",
        [
            ((("device", d), ("major", "8"), ("minor", str(i * 16))), 1)
            for i, d in enumerate(_DISKS)
        ],
    )
    for suffix, help_text in _FS_GAUGES:
        p.family(
            f"node_filesystem_{suffix}",
            "gauge",
            help_text,
            [
                ((("device", dev), ("fstype", fs), ("mountpoint", mnt)), p.value(1e11))
                for dev, fs, mnt in _FILESYSTEMS
            ],
        )
    for suffix in _NET_COUNTERS:
        p.family(
            f"node_network_{suffix}_total",
            "counter",
            f"Network device statistic {suffix}.",
            [((("device", n),), p.value(1e12)) for n in _NICS],
        )
    for suffix in _NET_GAUGES:
        p.family(
            f"node_network_{suffix}",
            "gauge",
            f"Network device property {suffix} from /sys/class/net/<iface>.",
            [((("device", n),), p.value(1e4)) for n in _NICS],
        )
    p.family(
        "node_network_info",
        "gauge",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        [
            (
                (
                    ("address", f"52:54:00:12:34:{i:02x}"),
                    ("broadcast", "ff:ff:ff:ff:ff:ff"),
                    ("device", n),
                    ("duplex", "full"),
                    ("ifalias", ""),
                    ("operstate", "up"),
                ),
                1,
            )
            for i, n in enumerate(_NICS)
        ],
    )
    for field in _MEMORY:
        p.family(
            f"node_memory_{field}_bytes",
            "gauge",
            f"Memory information field {field}_bytes.",
            [((), p.value(1e10))],
        )
    for field in _VMSTAT:
        p.family(
            f"node_vmstat_{field}",
            "untyped",
            f"/proc/vmstat information field {field}.",
            [((), p.value())],
        )
    for field in _NETSTAT:
        p.family(
            f"node_netstat_{field}",
            "untyped",
            f"Statistic {field.replace('_', '')}.",
            [((), p.value())],
        )
    for field in _SOCKSTAT:
        p.family(
            f"node_sockstat_{field}",
            "gauge",
            f"Number of {field} sockets in state inuse/orphan/tw/alloc/mem.",
            [((), p.value(1e3))],
        )
    for field in _TIMEX:
        p.family(
            f"node_timex_{field}", "gauge", f"Kernel clock discipline: {field}.", [((), p.value(1))]
        )
    for resource in ("cpu", "io", "memory"):
        p.family(
            f"node_pressure_{resource}_waiting_seconds_total",
            "counter",
            f"Total time in seconds that processes have waited for {resource}",
            [((), p.value(1e4))],
        )
    for n in ("1", "5", "15"):
        p.family(f"node_load{n}", "gauge", f"{n}m load average.", [((), p.value(4))])
    p.family(
        "node_boot_time_seconds", "gauge", "Node boot time, in unixtime.", [((), 1.700000123e9)]
    )
    p.family(
        "node_time_seconds", "gauge", "System time in seconds since epoch (1970).", [((), 1.7e9)]
    )
    p.family(
        "node_uname_info",
        "gauge",
        "Labeled system information as provided by the uname system call.",
        [
            (
                (
                    ("domainname", "(none)"),
                    ("machine", "x86_64"),
                    ("nodename", "web01.dc1.example.net"),
                    ("release", "6.1.0-13-amd64"),
                    ("sysname", "Linux"),
                    ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)"),
                ),
                1,
            )
        ],
    )
    for name, help_text, labels in _INFO:
        p.family(name, "gauge", help_text, [(labels, 1)])
    for suffix, help_text in (
        ("duration_seconds", "node_exporter: Duration of a collector scrape."),
        ("success", "node_exporter: Whether a collector succeeded."),
    ):
        p.family(
            f"node_scrape_collector_{suffix}",
            "gauge",
            help_text,
            [((("collector", c),), p.value(0.01)) for c in _COLLECTORS],
        )
    p.family(
        "node_schedstat_running_seconds_total",
        "counter",
        "Number of seconds CPU spent running a process.",
        [((("cpu", str(c)),), p.value(1e7)) for c in range(cpus)],
    )
    p.family(
        "node_softnet_processed_total",
        "counter",
        "Number of processed packets",
        [((("cpu", str(c)),), p.value(1e9)) for c in range(cpus)],
    )
    p.family(
        "node_hwmon_temp_celsius",
        "gauge",
        "Hardware monitor for temperature (input)",
        [
            ((("chip", "platform_coretemp_0"), ("sensor", f"temp{c + 1}")), 40 + c)
            for c in range(cpus + 1)
        ],
    )
    p.family(
        "promhttp_metric_handler_requests_total",
        "counter",
        "Total number of scrapes by HTTP status code.",
        [((("code", code),), p.value(1e5)) for code in ("200", "500", "503")],
    )
    for name, help_text in (
        ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
        ("process_max_fds", "Maximum number of open file descriptors."),
        ("process_open_fds", "Number of open file descriptors."),
        ("process_resident_memory_bytes", "Resident memory size in bytes."),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes."),
    ):
        p.family(
            name, "counter" if name.endswith("_total") else "gauge", help_text, [((), p.value())]
        )
    return p.text()


def big_page(series: int = 10_000) -> bytes:
    """An application page of `series` histogram series (about 100 bytes each)."""
    p = _Page(seed=10_000)
    buckets = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf")
    per_handler = len(buckets) + 2  # buckets, _sum, _count
    handlers = series // per_handler
    name = "app_http_request_duration_seconds"
    p.lines.append(f"# HELP {name} Latency of HTTP requests by handler, method and code.")
    p.lines.append(f"# TYPE {name} histogram")
    for h in range(handlers):
        base = (("handler", f"/api/v1/items/{h:05d}"), ("method", "GET"), ("code", "200"))
        count = 0.0
        for le in buckets:
            count += p.rng.randint(0, 5000)
            p.sample(f"{name}_bucket", (*base, ("le", le)), count)
        p.sample(f"{name}_sum", base, round(count * 0.042, 3))
        p.sample(f"{name}_count", base, count)
    rest = series - p.samples
    if rest > 0:
        p.family(
            "app_cache_entries",
            "gauge",
            "Entries per cache shard.",
            [((("shard", f"{i:04d}"),), p.value(1e5)) for i in range(rest)],
        )
    return p.text()
