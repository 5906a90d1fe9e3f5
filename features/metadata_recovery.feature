@destructive
Feature: Metadata-only recovery
  The metadata database is lost while Elasticsearch keeps running (the runbook's "database
  restore" path, step 3 on its own).

  Scenario: Restore the metadata database from its encrypted dump
    Given the platform holds 2 tenants with 1 indices of 200 documents each
    And the nightly backup has run
    When the metadata database is lost
    And PostgreSQL is redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And metadata integrity is verified
    Then the tenant_containers rows match the backup
    And every tenant row has its indices and every index its row
    And the recovery time is within the objective
    And the data loss is within the objective
