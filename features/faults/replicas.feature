@fault
Feature: A cluster too small for its replicas
  The platform's indices keep replicas, and the cluster they are restored into has no node for
  one of them beside its primary's (a replica never shares a node with a copy of its shard).
  Elasticsearch will never allocate it: the indices stay yellow for ever. The drill must fail as
  soon as Elasticsearch says so, naming its allocation explanation, not when the wait runs out.

  Scenario: The indices have more replicas than the cluster has nodes for
    Given the drill is expected to fail
    And the objectives are RTO 10m and RPO 24h
    And the platform's indices have more replicas than the cluster has nodes for
    And the platform holds 1 tenants with 1 indices of 50 documents each
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "a copy of this shard is already allocated to this node"
