@destructive
Feature: Full-site recovery
  The runbook's full recovery procedure: the site (Elasticsearch and PostgreSQL, with their
  data) is lost; MinIO, which holds the backups, survives. Recovery follows the runbook's
  steps 1-5, and is measured against the platform's objectives.

  Scenario: Recover every tenant after losing the site
    Given the platform holds the configured tenants
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    And each tenant's backup credentials are tried on every path
    Then every index is green with the documents its snapshot held
    And the tenant_containers rows match the backup
    And every tenant row has its indices and every index its row
    And the canary writes up to the backup are all back
    And each tenant's backup credentials reach only its own path
    And the recovery time is within the objective
    And the data loss is within the objective
