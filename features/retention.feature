@destructive
Feature: A week of nightly backups is kept
  The runbook keeps 7 days of nightly backups. The nights are simulated: the backup job runs
  with its clock set to each of the last nights (the snapshot and dump names carry the night,
  as the job's do), then the retention policy is applied as the job applies it, and what the
  store still holds is read back. Only what this drill wrote is ever deleted.

  Scenario: Nine nights of backups, seven days kept, the newest restores
    Given the platform holds 2 tenants with 1 indices of 100 documents each
    And the nightly backup has run on each of the last 9 nights
    When the retention policy of 7 days is applied
    Then every tenant and the metadata keep a recovery point for each of the last 7 days and nothing older
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
    And the recovery time is within the objective
    And the data loss is within the objective
