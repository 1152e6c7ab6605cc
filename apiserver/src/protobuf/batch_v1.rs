//! Conversions of the batch/v1 messages.

use super::*;
use k8s_pb::api::batch::v1 as pb;

messages! {
    "io.k8s.api.batch.v1";
    CronJob {
        metadata, spec, status,
    }
    CronJobSpec {
        schedule, time_zone, starting_deadline_seconds, concurrency_policy: omitempty, suspend,
        job_template, successful_jobs_history_limit, failed_jobs_history_limit,
    }
    CronJobStatus {
        active, last_schedule_time, last_successful_time,
    }
    Job {
        metadata, spec, status,
    }
    JobCondition {
        r#type, status, last_probe_time, last_transition_time, reason: omitempty,
        message: omitempty,
    }
    JobSpec {
        parallelism, completions, active_deadline_seconds, pod_failure_policy, success_policy,
        backoff_limit, backoff_limit_per_index, max_failed_indexes, selector, manual_selector,
        template, ttl_seconds_after_finished, completion_mode, suspend, pod_replacement_policy,
        managed_by,
    }
    JobStatus {
        conditions, start_time, completion_time, active: omitempty, succeeded: omitempty,
        failed: omitempty, terminating, completed_indexes: omitempty, failed_indexes,
        uncounted_terminated_pods, ready,
    }
    JobTemplateSpec {
        metadata, spec,
    }
    PodFailurePolicy {
        rules,
    }
    PodFailurePolicyOnExitCodesRequirement {
        container_name, operator, values,
    }
    PodFailurePolicyOnPodConditionsPattern {
        r#type, status,
    }
    PodFailurePolicyRule {
        action, on_exit_codes, on_pod_conditions,
    }
    SuccessPolicy {
        rules,
    }
    SuccessPolicyRule {
        succeeded_indexes, succeeded_count,
    }
    UncountedTerminatedPods {
        succeeded, failed,
    }
}
