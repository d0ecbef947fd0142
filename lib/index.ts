// The public API of tackle: named exports only, nothing re-exported wholesale.

// Commands and secrets
export { Command, Raw, Secret, mask, quote, raw, secret, sh, type Interpolation } from './command/command.ts';
export { TackleError, explainExitCode, type ErrorFields, type Phase } from './errors.ts';

// Inventory and vars
export { loadInventoryFile } from './inventory/load.ts';
export { defineInventory, type ParentSpec, type BecomeSpec, type GroupSpec, type HostSpec, type Inventory, type InventoryHost, type InventorySpec, type Vars } from './inventory/inventory.ts';
export { selectHosts } from './inventory/select.ts';
export { VarError, VarType, checkShape, v, type InferShape, type Shape } from './inventory/vars.ts';
export { loadEnv, type EnvVar, type EnvOf } from './env.ts';

// Connections
export { assertOk, framed, type Connection, type ConnectionStats, type ExecOptions, type ExecResult, type Exit, type Spawned, type Stdin } from './connection/connection.ts';
export { LocalConnection } from './connection/local.ts';
export { SudoConnection, type BecomeOptions } from './connection/sudo.ts';
export { SshConnection, connectSsh, type SshEndpoint, type SshOptions } from './connection/ssh.ts';
export { openConnection, sshEndpoint, connectContext, type ConnectContext } from './connection/open.ts';
export { ContainerConnection, openContainer, wrapCommand } from './connection/container.ts';
export type { ContainerSpec, ContainerVia } from './inventory/container.ts';

// Facts, operations, tasks, running
export { defineFact, type Fact, type FactGroup, type FactOutput, type FactScope, type FactValue } from './facts/fact.ts';
export {
  afterEach,
  combine,
  defineOperation,
  UNKNOWN,
  type Action,
  type ApplyContext,
  type Check,
  type Change,
  type CommonOptions,
  type Effects,
  type HandlerRef,
  type Operation,
  type PlanPart,
  type Unknown,
} from './ops/operation.ts';
export {
  defineTask,
  type Handler,
  type HandlerLookup,
  type HostContext,
  type HostInfo,
  type RunTaskSpec,
  type StepEntry,
  type StepStatus,
  type StepsTaskSpec,
  type Task,
  type TaskSpec,
  type VarsOf,
} from './engine/task.ts';
export { runTask, checkVars, type HostResult, type HostStatus, type RunEvent, type RunOptions, type RunResult, type RunWarning } from './engine/runner.ts';
export type { StepResult } from './engine/host-run.ts';

// Operations, one area each, mirrored by lib/facts/
export { refuse } from './ops/refuse.ts';
export { apt, APT_LOCK_TIMEOUT_SECONDS, type PackagesOptions } from './ops/apt.ts';
export { certbot, LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, type CertificateOptions, type LineagePaths } from './ops/certbot.ts';
export { nginx, renderSite, DEFAULT_ACME_WEBROOT, type DefaultSiteOptions, type NginxTarget, type RateLimit, type SiteLocation, type SiteOptions, type SiteSpec, type Upstreams } from './ops/nginx.ts';
export { colorUnit, deploy, releaseLayout, rollbackTarget, type BlueGreenOptions, type ReleaseLayout, type ReleaseOptions, type ReleaseSource, type Restart, type RollbackOptions } from './ops/deploy.ts';
export { health, waitForHealth, type HealthOutcome, type Probe, type WaitOptions } from './ops/health.ts';
export { files, type DirectoryOptions, type FileOptions, type LineOptions, type LinkOptions, type Mode } from './ops/files.ts';
export { fail2ban, type DefaultsOptions as Fail2banDefaultsOptions, type JailOptions, type ReloadOptions as Fail2banReloadOptions } from './ops/fail2ban.ts';
export { server, type HostnameOptions, type SwapfileOptions, type TimezoneOptions } from './ops/server.ts';
export { postgres, type CompareRowCountsOptions, type DatabaseOptions, type DumpOptions, type PruneOptions, type RestoreOptions } from './ops/postgres.ts';
export { rclone, type CheckOptions, type CopyOptions, type DownloadOptions, type RemoteOptions, type RemotePruneOptions, type S3Provider } from './ops/rclone.ts';
export { schedule, cronToCalendar, type CronOptions, type ScheduledCommand, type TimerOptions } from './ops/schedule.ts';
export { shell, type ShellOptions } from './ops/shell.ts';
export { sshd, type SshdConfigOptions, type SshdSettings } from './ops/sshd.ts';
export type { SudoerOptions } from './ops/sudoers.ts';
export { ufw, type UfwDefaultsOptions, type UfwEnabledOptions, type UfwRuleOptions, type UfwRuleSpec, type UfwRulesOptions } from './ops/ufw.ts';
export { unattended, type UnattendedOptions } from './ops/unattended.ts';
export { systemd } from './ops/systemd.ts';
export { users, type AuthorizedKeysOptions, type UserOptions } from './ops/users.ts';
export { pathInfo, type PathInfo, type StoredFile } from './facts/files.ts';

// Backups
export { selectRetention, dumpName, type Backup, type RetentionPolicy } from './ops/retention.ts';
export { backupEnv, backupVars, cronVar, webhookEnv, type BackupSecrets, type BackupVars } from './backup/config.ts';
export { backupMetrics, verifiedMetrics, type VerifiedUpload } from './backup/metrics.ts';
export { runNightly } from './backup/nightly.ts';
export { requestOf, restoreDrill, restoreVars, type DrillResult, type RestoreVars } from './backup/restore.ts';
export { failureMessage, postWebhook } from './backup/webhook.ts';

// Fleet health and releases: reports as read-only tasks
export { healthTable, type Severity } from './health/evaluate.ts';
export { healthMetrics } from './health/metrics.ts';
export { healthExitCode, healthOf, healthTask } from './health/task.ts';
export { releasesState, type Color, type ReleaseRecord, type ReleasesState } from './facts/deploy.ts';

// Prometheus textfiles (node_exporter)
export { hostTextfile, renderTextfile, writeTextfile } from './metrics/textfile.ts';

// Command line
export { runCli, runIfMain, isMain, type CliIo, type CliOutput, type OutputEnd } from './cli/main.ts';
export { renderTable } from './cli/table.ts';
export { toJsonReport, exitCodeOf, EXIT, EXIT_CODE_MEANINGS, type JsonReport } from './engine/report.ts';

// Types and constants the signatures and comments above refer to, so that code can name them and
// the API reference (`npm run docs`) links them.
export type { EnvValue } from './env.ts';
export type { Part } from './command/command.ts';
export type { FactMap, FactValues } from './facts/fact.ts';
export { CONTENT_LIMIT, type Ownership } from './facts/files.ts';
export type { PgConnection, PgVia } from './facts/postgres.ts';
export type { RemoteLocation } from './facts/rclone.ts';
export type { UfwPolicy } from './facts/ufw.ts';
export type { ResolvedSshConfig } from './connection/ssh-config.ts';
export { FAIL2BAN_DEFAULTS_FILE, type Fail2banCommon, type Fail2banTime } from './ops/fail2ban.ts';
export type { Clock, HttpProbeOptions, ProbeFrom, StopSign, WaitContext } from './ops/health.ts';
export { SSHD_ROLLBACK_SECONDS } from './ops/sshd.ts';
export type { ServiceOptions as SystemdServiceOptions, UnitFileOptions as SystemdUnitFileOptions } from './ops/systemd.ts';
export type { Decision, Retention } from './ops/retention.ts';
export type { TaskFlag } from './engine/task.ts';
export type { StopSignal } from './cli/main.ts';
export type { OutputFlag } from './cli/args.ts';
export type { Paint } from './cli/ui.ts';
export type { UndeclaredVar, VarAbsent, VarProblem, VarStructure } from './inventory/vars.ts';
export type { HandlerReport, PendingHandler } from './engine/pending-handlers.ts';
export type { HostReport, ReportError, StepReport } from './engine/report.ts';
export type { RestoreRequest, TableCount } from './backup/restore.ts';
export type { PostResult, WebhookPayload } from './backup/webhook.ts';
export type { HostRun as BackupHostRun } from './backup/metrics.ts';
export type { NightlyContext, NightlyHooks, VerifiedDump } from './backup/nightly.ts';
export type { HealthCheck, HostHealth, HttpEndpoint, TlsEndpoint } from './health/evaluate.ts';
export { RECORDS_READ, type CurrentRelease, type Release, type ReleaseResult, type Slot } from './facts/deploy.ts';
export type { Metric, Sample } from './metrics/textfile.ts';
