@destructive
Feature: Recovery of one tenant
  One tenant's indices and metadata rows are destroyed (an operator error, a bad migration).
  Only that tenant is restored, from its own snapshot path and its organisation's dump; the
  other tenants keep running and must not be touched.

  Scenario: Restore one tenant without touching the others
    Given the platform holds these tenants:
      | org_id | namespace | indices | documents |
      | acme   | prod      | 2       | 500       |
      | acme   | staging   | 2       | 500       |
      | globex | prod      | 2       | 500       |
    And the nightly backup has run
    When tenant "acme/prod" loses its data
    And the snapshot of tenant "acme/prod" is restored from MinIO
    And the rows of tenant "acme/prod" are restored from the newest dump of its organisation
    And data integrity is verified
    Then every index is green with the documents its snapshot held
    And the tenant_containers rows match the backup
    And the canary writes up to the backup are all back
    And tenant "acme/staging" was not touched
    And tenant "globex/prod" was not touched
    And the recovery time is within the objective
