@fault @cluster
Feature: Elasticsearch nodes lost while the snapshots are restored
  The platform runs Elasticsearch as a cluster of three nodes with a replica per shard. A node
  lost while the tenants' snapshots are restored is the cluster's event, not the end of the
  recovery: the restore goes on on the nodes left (a new master carries it on when the master
  was lost), and an index whose only copy went with the node is restored again from its
  snapshot. Each recovery still ends green with every document its snapshot held; its report
  records the node lost, and the time it cost against the undisturbed recovery.

  Background:
    Given the objectives are RTO 10m and RPO 24h
    And the platform holds 2 tenants with 2 indices of 200 documents each
    And the nightly backup has run

  Scenario: The recovery undisturbed, the baseline the others are measured against
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held

  Scenario: A data node is killed while primaries are restored
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And an Elasticsearch data node will be killed during the snapshot restore
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held

  Scenario: A data node restarts while primaries are restored
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And an Elasticsearch data node will be restarted during the snapshot restore
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held

  Scenario: The elected master is killed while primaries are restored
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And the elected Elasticsearch master will be killed during the snapshot restore
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
