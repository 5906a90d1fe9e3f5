@containers
Feature: A slow object store on the way back
  The backups are intact but the store answers late and slowly from the recovery site (a
  congested link, another region). The recovery must still finish, say what it cost, and name
  the store, not Elasticsearch, as what bounded it (`--target containers`: Toxiproxy).

  Scenario: The object store is slow: the recovery finishes and names the store as the bottleneck
    Given the objectives are RTO 10m and RPO 24h
    And the platform holds 2 tenants with 1 indices of 2000 documents each
    And the nightly backup has run
    When the object store's network adds 50 ms to every reply and carries at most 64 KiB/s
    And the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
    And the recovery time is within the objective
    And the report names the object store as the bottleneck of the restore
