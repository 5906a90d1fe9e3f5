@restore-test
Feature: Restore test of the platform's own backups
  What a quarterly drill on staging asks first: can last night's backups, as the platform's own
  job made them, be restored within the objectives? Nothing is destroyed: the newest snapshot of
  every tenant is restored beside the live indices (renamed, from a read-only repository) and
  the newest metadata dump into a scratch database; both are verified and then removed, and
  the environment is checked to be exactly as it was found. Where the settings name a tenant's
  own backup credentials, they are tried, read only, on the other tenants' paths. On Kubernetes
  the backup CronJob's own record is read too: suspended, a failed newest run or no success
  within the RPO fails the test.

  Scenario: Last night's backups restore within the objectives
    Given the platform's newest recovery points are found
    And their integrity is checked without relying on checksum records
    When the newest metadata dump is restored into a scratch database
    And every tenant's newest snapshot is restored beside the live indices
    And the restored copy is verified
    Then every restored index is green with the documents the platform recorded
    And every restored row has its index in the tenant's snapshot and every index its row
    And every tenant has a complete recovery point within the objective
    And the restore time is within the objective
    And each tenant's own backup credentials named in the settings reach only its own path
    And the platform's nightly backup job is healthy where its scheduler can be read
