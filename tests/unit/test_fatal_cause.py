"""A service that died while starting is diagnosed by its own fatal error (issue 24, item 7).
The texts are Elasticsearch 9.5.4's own output, cut to the lines that matter."""

from __future__ import annotations

import socket

import pytest

from drdrill.errors import ServiceNotReady
from drdrill.host.fatal import bind_port, fatal_cause, port_holder
from drdrill.host.readiness import wait_until_ready

BIND = """\
[2026-12-02T14:40:04,488][INFO ][o.e.r.s.FileSettingsService] [drdrill-es] setting file not found
[2026-12-02T14:40:04,781][ERROR][o.e.b.Elasticsearch      ] [drdrill-es] fatal exception while booting \
Elasticsearchorg.elasticsearch.http.BindHttpException: Failed to bind to 127.0.0.1:37983
\tat org.elasticsearch.server@9.5.4/org.elasticsearch.http.AbstractHttpServerTransport.bindAddress(x.java:233)
Caused by: java.net.BindException: Address already in use
\tat java.base/sun.nio.ch.Net.bind0(Native Method)
\tSuppressed: java.lang.RuntimeException: Rethrowing promise failure cause
\t\tat io.netty.common@4.1.135.Final/io.netty.util.concurrent.DefaultPromise.rethrowIfFailed(x.java:686)

ERROR: Elasticsearch did not exit normally - check the logs at /w/elasticsearch/logs/repro.log
[2026-12-02T14:40:05,275][INFO ][o.e.n.Node               ] [drdrill-es] closed
Elasticsearch died while starting up, exit code: 1
"""

LOCK = """\
[2026-12-02T14:41:27,372][ERROR][o.e.b.Elasticsearch      ] [drdrill-es] fatal exception while booting \
Elasticsearchjava.lang.IllegalStateException: failed to obtain node locks, tried [/w/data]; maybe these \
locations are not writable or multiple nodes were started on the same data path?
\tat org.elasticsearch.server@9.5.4/org.elasticsearch.env.NodeEnvironment.<init>(NodeEnvironment.java:293)
Caused by: org.apache.lucene.store.LockObtainFailedException: Lock held by another program: /w/data/node.lock
\tat org.apache.lucene.core@10.3.2/org.apache.lucene.store.NativeFSLockFactory.obtainFSLock(x.java:117)

ERROR: Elasticsearch did not exit normally - check the logs at /w/logs/repro.log
Elasticsearch died while starting up, exit code: 1
"""


def test_elasticsearch_bind_failure_names_the_exception_and_its_root():
    cause = fatal_cause(BIND)
    assert cause == ("org.elasticsearch.http.BindHttpException: Failed to bind to 127.0.0.1:37983 "
                     "(caused by java.net.BindException: Address already in use)")
    assert bind_port(cause) == 37983


def test_elasticsearch_lock_failure_names_the_held_node_lock():
    cause = fatal_cause(LOCK)
    assert cause is not None and cause.startswith("java.lang.IllegalStateException: failed to obtain node locks")
    assert "Lock held by another program: /w/data/node.lock" in cause
    assert bind_port(cause) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("ERROR: [1] bootstrap checks failed. You must address the points described in the following [1] lines\n"
     "bootstrap check failure [1] of [1]: max virtual memory areas vm.max_map_count [65530] is too low\n"
     "Elasticsearch died while starting up, exit code: 78\n",
     "[1] bootstrap checks failed. You must address the points described in the following [1] lines; "
     "bootstrap check failure [1] of [1]: max virtual memory areas vm.max_map_count [65530] is too low"),
    ("Error occurred during initialization of VM\nToo small maximum heap\n",
     "Error occurred during initialization of VM"),
    ("2026-12-02 14:00:00.000 UTC [7] FATAL:  could not create lock file \"/s/.s.PGSQL.5432.lock\": "
     "Permission denied\n",
     "could not create lock file \"/s/.s.PGSQL.5432.lock\": Permission denied"),
    ("INFO starting\nElasticsearch died while starting up, exit code: 1\n", None),
    ("", None),
])
def test_other_fatal_errors_and_none(text, expected):
    assert fatal_cause(text) == expected


def test_the_holder_of_a_port_is_named():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        holder = port_holder(held.getsockname()[1])
    assert holder is not None and "LISTEN" in holder


def test_a_dead_service_is_diagnosed_by_its_fatal_error_not_its_epitaph(tmp_path):
    log = tmp_path / "console.log"
    log.write_text(BIND)
    with pytest.raises(ServiceNotReady) as err:
        wait_until_ready("elasticsearch", lambda: (False, "not answering"), timeout_s=3600, log_path=log,
                         exited=lambda: 1)
    message = str(err.value)
    assert "its fatal error: org.elasticsearch.http.BindHttpException: Failed to bind to 127.0.0.1:37983" in message
    assert "Address already in use" in message and "died while starting up" not in message
    assert "Elasticsearch died while starting up" in err.value.log_tail  # the tail is kept whole
