@destructive
Feature: Recovery into the next Elasticsearch major
  A recovery may bring up a newer Elasticsearch than the one that took the backups (the
  replacement site runs the current release). Snapshots taken on 8.x must restore into 9.x:
  this drill passes, or fails with the reason Elasticsearch gives.

  Scenario: An 8.x backup restores into a 9.x cluster
    Given the platform runs Elasticsearch 8.19.21
    And the platform holds 2 tenants with 1 indices of 200 documents each
    And the nightly backup has run
    When the site is lost
    And Elasticsearch 9.5.4 and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
    And the tenant_containers rows match the backup
    And the canary writes up to the backup are all back
    And the recovery time is within the objective
    And the data loss is within the objective
