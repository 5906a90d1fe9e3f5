@fault @kubernetes
Feature: Faults only Kubernetes can make
  A recovery whose deployment cannot start (Elasticsearch's volume claims cannot be bound, its
  image cannot be pulled) and a node whose kubelet stops during the restore. Each is done for
  real on a live target with Kubernetes (`drdrill cluster up`, then
  `drdrill run features/faults/kubernetes.feature --target live --config <its drdrill-live.toml>`)
  and healed after the scenario; other targets leave this feature out. The backup CronJob's own
  faults (suspended, its last run failed) are what the restore test reads.

  Background:
    Given the drill is expected to fail
    And the objectives are RTO 5m and RPO 24h
    And the platform holds these tenants:
      | org_id | namespace | indices | documents |
      | k8sfault | a       | 1       | 50        |

  Scenario: Elasticsearch's volume claims cannot be bound when the site is redeployed
    Given the nightly backup has run
    And the Elasticsearch volume claims of the next deployment cannot be bound
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    Then the recovery fails in phase "deploy-services"
    And the diagnosis names "unbound"

  Scenario: Elasticsearch's image cannot be pulled when the site is redeployed
    Given the nightly backup has run
    And the Elasticsearch image of the next deployment cannot be pulled
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    Then the recovery fails in phase "deploy-services"
    And the diagnosis names "ImagePull"

  Scenario: The node's kubelet stops as the snapshot restore begins
    Given the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And the node's kubelet will be stopped as the snapshot restore begins
    And every tenant's snapshot is restored from MinIO
    Then the recovery fails in phase "restore-snapshots"
    And the diagnosis names "kubelet"
