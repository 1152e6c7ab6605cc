//! Conversions of the core/v1 messages.

use super::*;
use k8s_pb::api::core::v1 as pb;

messages! {
    "io.k8s.api.core.v1";
    Affinity {
        node_affinity, pod_affinity, pod_anti_affinity,
    }
    AppArmorProfile {
        r#type, localhost_profile,
    }
    AttachedVolume {
        name, device_path,
    }
    AwsElasticBlockStoreVolumeSource as "AWSElasticBlockStoreVolumeSource" {
        volume_id = "volumeID", fs_type: omitempty, partition: omitempty, read_only: omitempty,
    }
    AzureDiskVolumeSource {
        disk_name, disk_uri = "diskURI", caching_mode, fs_type, read_only, kind,
    }
    AzureFilePersistentVolumeSource {
        secret_name, share_name, read_only: omitempty, secret_namespace,
    }
    AzureFileVolumeSource {
        secret_name, share_name, read_only: omitempty,
    }
    Binding {
        metadata, target,
    }
    CSIPersistentVolumeSource {
        driver, volume_handle, read_only: omitempty, fs_type: omitempty, volume_attributes,
        controller_publish_secret_ref, node_stage_secret_ref, node_publish_secret_ref,
        controller_expand_secret_ref, node_expand_secret_ref,
    }
    CSIVolumeSource {
        driver, read_only, fs_type, volume_attributes, node_publish_secret_ref,
    }
    Capabilities {
        add, drop,
    }
    CephFsPersistentVolumeSource as "CephFSPersistentVolumeSource" {
        monitors, path: omitempty, user: omitempty, secret_file: omitempty, secret_ref,
        read_only: omitempty,
    }
    CephFsVolumeSource as "CephFSVolumeSource" {
        monitors, path: omitempty, user: omitempty, secret_file: omitempty, secret_ref,
        read_only: omitempty,
    }
    CinderPersistentVolumeSource {
        volume_id = "volumeID", fs_type: omitempty, read_only: omitempty, secret_ref,
    }
    CinderVolumeSource {
        volume_id = "volumeID", fs_type: omitempty, read_only: omitempty, secret_ref,
    }
    ClientIpConfig as "ClientIPConfig" {
        timeout_seconds,
    }
    ClusterTrustBundleProjection {
        name, signer_name, label_selector, optional, path,
    }
    ConfigMap {
        metadata, immutable, data, binary_data,
    }
    ConfigMapEnvSource {
        local_object_reference: inline, optional,
    }
    ConfigMapKeySelector {
        local_object_reference: inline, key, optional,
    }
    ConfigMapNodeConfigSource {
        namespace, name, uid: omitempty, resource_version: omitempty, kubelet_config_key,
    }
    ConfigMapProjection {
        local_object_reference: inline, items, optional,
    }
    ConfigMapVolumeSource {
        local_object_reference: inline, items, default_mode, optional,
    }
    Container {
        name, image: omitempty, command, args, working_dir: omitempty, ports, env_from, env,
        resources, resize_policy, restart_policy, restart_policy_rules, volume_mounts,
        volume_devices, liveness_probe, readiness_probe, startup_probe, lifecycle,
        termination_message_path: omitempty, termination_message_policy: omitempty,
        image_pull_policy: omitempty, security_context, stdin: omitempty, stdin_once: omitempty,
        tty: omitempty,
    }
    ContainerExtendedResourceRequest {
        container_name, resource_name, request_name,
    }
    ContainerImage {
        names, size_bytes: omitempty,
    }
    ContainerPort {
        name: omitempty, host_port: omitempty, container_port, protocol: omitempty,
        host_ip = "hostIP": omitempty,
    }
    ContainerResizePolicy {
        resource_name, restart_policy,
    }
    ContainerRestartRule {
        action: omitempty, exit_codes,
    }
    ContainerRestartRuleOnExitCodes {
        operator: omitempty, values,
    }
    ContainerState {
        waiting, running, terminated,
    }
    ContainerStateRunning {
        started_at,
    }
    ContainerStateTerminated {
        exit_code, signal: omitempty, reason: omitempty, message: omitempty, started_at,
        finished_at, container_id = "containerID": omitempty,
    }
    ContainerStateWaiting {
        reason: omitempty, message: omitempty,
    }
    ContainerStatus {
        name, state, last_state, ready, restart_count, image, image_id = "imageID",
        container_id = "containerID": omitempty, started, allocated_resources, resources,
        volume_mounts, user, allocated_resources_status, stop_signal,
    }
    ContainerUser {
        linux,
    }
    DaemonEndpoint {
        port = "Port",
    }
    DownwardAPIProjection {
        items,
    }
    DownwardAPIVolumeFile {
        path, field_ref, resource_field_ref, mode,
    }
    DownwardAPIVolumeSource {
        items, default_mode,
    }
    EmptyDirVolumeSource {
        medium: omitempty, size_limit,
    }
    EndpointAddress {
        ip, hostname: omitempty, node_name, target_ref,
    }
    EndpointPort {
        name: omitempty, port, protocol: omitempty, app_protocol,
    }
    EndpointSubset {
        addresses, not_ready_addresses, ports,
    }
    Endpoints {
        metadata, subsets,
    }
    EnvFromSource {
        prefix: omitempty, config_map_ref, secret_ref,
    }
    EnvVar {
        name, value: omitempty, value_from,
    }
    EnvVarSource {
        field_ref, resource_field_ref, config_map_key_ref, secret_key_ref, file_key_ref,
    }
    EphemeralContainer {
        ephemeral_container_common: inline, target_container_name: omitempty,
    }
    EphemeralContainerCommon as inline {
        name, image: omitempty, command, args, working_dir: omitempty, ports, env_from, env,
        resources, resize_policy, restart_policy, restart_policy_rules, volume_mounts,
        volume_devices, liveness_probe, readiness_probe, startup_probe, lifecycle,
        termination_message_path: omitempty, termination_message_policy: omitempty,
        image_pull_policy: omitempty, security_context, stdin: omitempty, stdin_once: omitempty,
        tty: omitempty,
    }
    EphemeralVolumeSource {
        volume_claim_template,
    }
    Event {
        metadata, involved_object, reason: omitempty, message: omitempty, source, first_timestamp,
        last_timestamp, count: omitempty, r#type: omitempty, event_time, series, action: omitempty,
        related, reporting_component, reporting_instance,
    }
    EventSeries {
        count: omitempty, last_observed_time,
    }
    EventSource {
        component: omitempty, host: omitempty,
    }
    ExecAction {
        command,
    }
    FcVolumeSource as "FCVolumeSource" {
        target_ww_ns = "targetWWNs", lun, fs_type: omitempty, read_only: omitempty, wwids,
    }
    FileKeySelector {
        volume_name, path, key, optional,
    }
    FlexPersistentVolumeSource {
        driver, fs_type: omitempty, secret_ref, read_only: omitempty, options,
    }
    FlexVolumeSource {
        driver, fs_type: omitempty, secret_ref, read_only: omitempty, options,
    }
    FlockerVolumeSource {
        dataset_name: omitempty, dataset_uuid = "datasetUUID": omitempty,
    }
    GcePersistentDiskVolumeSource as "GCEPersistentDiskVolumeSource" {
        pd_name, fs_type: omitempty, partition: omitempty, read_only: omitempty,
    }
    GitRepoVolumeSource {
        repository, revision: omitempty, directory: omitempty,
    }
    GlusterfsPersistentVolumeSource {
        endpoints, path, read_only: omitempty, endpoints_namespace,
    }
    GlusterfsVolumeSource {
        endpoints, path, read_only: omitempty,
    }
    GrpcAction as "GRPCAction" {
        port, service,
    }
    HostAlias {
        ip, hostnames,
    }
    HostIp as "HostIP" {
        ip,
    }
    HostPathVolumeSource {
        path, r#type,
    }
    HttpGetAction as "HTTPGetAction" {
        path: omitempty, port, host: omitempty, scheme: omitempty, http_headers,
    }
    HttpHeader as "HTTPHeader" {
        name, value,
    }
    ImageVolumeSource {
        reference: omitempty, pull_policy: omitempty,
    }
    IscsiPersistentVolumeSource as "ISCSIPersistentVolumeSource" {
        target_portal, iqn, lun, iscsi_interface: omitempty, fs_type: omitempty,
        read_only: omitempty, portals, chap_auth_discovery: omitempty, chap_auth_session: omitempty,
        secret_ref, initiator_name,
    }
    IscsiVolumeSource as "ISCSIVolumeSource" {
        target_portal, iqn, lun, iscsi_interface: omitempty, fs_type: omitempty,
        read_only: omitempty, portals, chap_auth_discovery: omitempty, chap_auth_session: omitempty,
        secret_ref, initiator_name,
    }
    KeyToPath {
        key, path, mode,
    }
    Lifecycle {
        post_start, pre_stop, stop_signal,
    }
    LifecycleHandler {
        exec, http_get, tcp_socket, sleep,
    }
    LimitRange {
        metadata, spec,
    }
    LimitRangeItem {
        r#type, max, min, default, default_request, max_limit_request_ratio,
    }
    LimitRangeSpec {
        limits,
    }
    LinuxContainerUser {
        uid, gid, supplemental_groups,
    }
    LoadBalancerIngress {
        ip: omitempty, hostname: omitempty, ip_mode, ports,
    }
    LoadBalancerStatus {
        ingress,
    }
    LocalObjectReference {
        name: omitempty,
    }
    LocalVolumeSource {
        path, fs_type,
    }
    ModifyVolumeStatus {
        target_volume_attributes_class_name: omitempty, status,
    }
    Namespace {
        metadata, spec, status,
    }
    NamespaceCondition {
        r#type, status, last_transition_time, reason: omitempty, message: omitempty,
    }
    NamespaceSpec {
        finalizers,
    }
    NamespaceStatus {
        phase: omitempty, conditions,
    }
    NfsVolumeSource as "NFSVolumeSource" {
        server, path, read_only: omitempty,
    }
    Node {
        metadata, spec, status,
    }
    NodeAddress {
        r#type, address,
    }
    NodeAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    NodeCondition {
        r#type, status, last_heartbeat_time, last_transition_time, reason: omitempty,
        message: omitempty,
    }
    NodeConfigSource {
        config_map,
    }
    NodeConfigStatus {
        assigned, active, last_known_good, error: omitempty,
    }
    NodeDaemonEndpoints {
        kubelet_endpoint,
    }
    NodeFeatures {
        supplemental_groups_policy,
    }
    NodeRuntimeHandler {
        name, features,
    }
    NodeRuntimeHandlerFeatures {
        recursive_read_only_mounts, user_namespaces,
    }
    NodeSelector {
        node_selector_terms,
    }
    NodeSelectorRequirement {
        key, operator, values,
    }
    NodeSelectorTerm {
        match_expressions, match_fields,
    }
    NodeSpec {
        pod_cidr = "podCIDR": omitempty, pod_cid_rs = "podCIDRs",
        provider_id = "providerID": omitempty, unschedulable: omitempty, taints, config_source,
        external_id = "externalID": omitempty,
    }
    NodeStatus {
        capacity, allocatable, phase: omitempty, conditions, addresses, daemon_endpoints, node_info,
        images, volumes_in_use, volumes_attached, config, runtime_handlers, features,
        declared_features,
    }
    NodeSwapStatus {
        capacity,
    }
    NodeSystemInfo {
        machine_id = "machineID", system_uuid = "systemUUID", boot_id = "bootID", kernel_version,
        os_image, container_runtime_version, kubelet_version, kube_proxy_version, operating_system,
        architecture, swap,
    }
    ObjectFieldSelector {
        api_version: omitempty, field_path,
    }
    ObjectReference {
        kind: omitempty, namespace: omitempty, name: omitempty, uid: omitempty,
        api_version: omitempty, resource_version: omitempty, field_path: omitempty,
    }
    PersistentVolume {
        metadata, spec, status,
    }
    PersistentVolumeClaim {
        metadata, spec, status,
    }
    PersistentVolumeClaimCondition {
        r#type, status, last_probe_time, last_transition_time, reason: omitempty,
        message: omitempty,
    }
    PersistentVolumeClaimSpec {
        access_modes, selector, resources, volume_name: omitempty, storage_class_name, volume_mode,
        data_source, data_source_ref, volume_attributes_class_name,
    }
    PersistentVolumeClaimStatus {
        phase: omitempty, access_modes, capacity, conditions, allocated_resources,
        allocated_resource_statuses, current_volume_attributes_class_name, modify_volume_status,
    }
    PersistentVolumeClaimTemplate {
        metadata, spec,
    }
    PersistentVolumeClaimVolumeSource {
        claim_name, read_only: omitempty,
    }
    PersistentVolumeSource as inline {
        gce_persistent_disk, aws_elastic_block_store, host_path, glusterfs, nfs, rbd, iscsi, cinder,
        cephfs, fc, flocker, flex_volume, azure_file, vsphere_volume, quobyte, azure_disk,
        photon_persistent_disk, portworx_volume, scale_io = "scaleIO", local, storageos, csi,
    }
    PersistentVolumeSpec {
        capacity, persistent_volume_source: inline, access_modes, claim_ref,
        persistent_volume_reclaim_policy: omitempty, storage_class_name: omitempty, mount_options,
        volume_mode, node_affinity, volume_attributes_class_name,
    }
    PersistentVolumeStatus {
        phase: omitempty, message: omitempty, reason: omitempty, last_phase_transition_time,
    }
    PhotonPersistentDiskVolumeSource {
        pd_id = "pdID", fs_type: omitempty,
    }
    Pod {
        metadata, spec, status,
    }
    PodAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    PodAffinityTerm {
        label_selector, namespaces, topology_key, namespace_selector, match_label_keys,
        mismatch_label_keys,
    }
    PodAntiAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    PodCertificateProjection {
        signer_name: omitempty, key_type: omitempty, max_expiration_seconds,
        credential_bundle_path: omitempty, key_path: omitempty, certificate_chain_path: omitempty,
        user_annotations,
    }
    PodCondition {
        r#type, observed_generation: omitempty, status, last_probe_time, last_transition_time,
        reason: omitempty, message: omitempty,
    }
    PodDnsConfig as "PodDNSConfig" {
        nameservers, searches, options,
    }
    PodDnsConfigOption as "PodDNSConfigOption" {
        name: omitempty, value,
    }
    PodExtendedResourceClaimStatus {
        request_mappings, resource_claim_name,
    }
    PodIp as "PodIP" {
        ip,
    }
    PodOs as "PodOS" {
        name,
    }
    PodReadinessGate {
        condition_type,
    }
    PodResourceClaim {
        name, resource_claim_name, resource_claim_template_name,
    }
    PodResourceClaimStatus {
        name, resource_claim_name,
    }
    PodSchedulingGate {
        name,
    }
    PodSecurityContext {
        se_linux_options, windows_options, run_as_user, run_as_group, run_as_non_root,
        supplemental_groups, supplemental_groups_policy, fs_group, sysctls, fs_group_change_policy,
        seccomp_profile, app_armor_profile, se_linux_change_policy,
    }
    PodSpec {
        volumes, init_containers, containers, ephemeral_containers, restart_policy: omitempty,
        termination_grace_period_seconds, active_deadline_seconds, dns_policy: omitempty,
        node_selector, service_account_name: omitempty, service_account: omitempty,
        automount_service_account_token, node_name: omitempty, host_network: omitempty,
        host_pid = "hostPID": omitempty, host_ipc = "hostIPC": omitempty, share_process_namespace,
        security_context, image_pull_secrets, hostname: omitempty, subdomain: omitempty, affinity,
        scheduler_name: omitempty, tolerations, host_aliases, priority_class_name: omitempty,
        priority, dns_config, readiness_gates, runtime_class_name, enable_service_links,
        preemption_policy, overhead, topology_spread_constraints,
        set_hostname_as_fqdn = "setHostnameAsFQDN", os, host_users, scheduling_gates,
        resource_claims, resources, hostname_override, workload_ref,
    }
    PodStatus {
        observed_generation: omitempty, phase: omitempty, conditions, message: omitempty,
        reason: omitempty, nominated_node_name: omitempty, host_ip = "hostIP": omitempty,
        host_ips = "hostIPs", pod_ip = "podIP": omitempty, pod_ips = "podIPs", start_time,
        init_container_statuses, container_statuses, qos_class: omitempty,
        ephemeral_container_statuses, resize: omitempty, resource_claim_statuses,
        extended_resource_claim_status, allocated_resources, resources,
    }
    PodTemplate {
        metadata, template,
    }
    PodTemplateSpec {
        metadata, spec,
    }
    PortStatus {
        port, protocol, error,
    }
    PortworxVolumeSource {
        volume_id = "volumeID", fs_type: omitempty, read_only: omitempty,
    }
    PreferredSchedulingTerm {
        weight, preference,
    }
    Probe {
        handler: inline, initial_delay_seconds: omitempty, timeout_seconds: omitempty,
        period_seconds: omitempty, success_threshold: omitempty, failure_threshold: omitempty,
        termination_grace_period_seconds,
    }
    ProbeHandler as inline {
        exec, http_get, tcp_socket, grpc,
    }
    ProjectedVolumeSource {
        sources, default_mode,
    }
    QuobyteVolumeSource {
        registry, volume, read_only: omitempty, user: omitempty, group: omitempty,
        tenant: omitempty,
    }
    RbdPersistentVolumeSource as "RBDPersistentVolumeSource" {
        monitors, image, fs_type: omitempty, pool: omitempty, user: omitempty, keyring: omitempty,
        secret_ref, read_only: omitempty,
    }
    RbdVolumeSource as "RBDVolumeSource" {
        monitors, image, fs_type: omitempty, pool: omitempty, user: omitempty, keyring: omitempty,
        secret_ref, read_only: omitempty,
    }
    ReplicationController {
        metadata, spec, status,
    }
    ReplicationControllerCondition {
        r#type, status, last_transition_time, reason: omitempty, message: omitempty,
    }
    ReplicationControllerSpec {
        replicas, min_ready_seconds: omitempty, selector, template,
    }
    ReplicationControllerStatus {
        replicas, fully_labeled_replicas: omitempty, ready_replicas: omitempty,
        available_replicas: omitempty, observed_generation: omitempty, conditions,
    }
    ResourceClaim {
        name, request: omitempty,
    }
    ResourceFieldSelector {
        container_name: omitempty, resource, divisor,
    }
    ResourceHealth {
        resource_id = "resourceID", health: omitempty,
    }
    ResourceQuota {
        metadata, spec, status,
    }
    ResourceQuotaSpec {
        hard, scopes, scope_selector,
    }
    ResourceQuotaStatus {
        hard, used,
    }
    ResourceRequirements {
        limits, requests, claims,
    }
    ResourceStatus {
        name, resources,
    }
    ScaleIoPersistentVolumeSource as "ScaleIOPersistentVolumeSource" {
        gateway, system, secret_ref, ssl_enabled: omitempty, protection_domain: omitempty,
        storage_pool: omitempty, storage_mode: omitempty, volume_name: omitempty,
        fs_type: omitempty, read_only: omitempty,
    }
    ScaleIoVolumeSource as "ScaleIOVolumeSource" {
        gateway, system, secret_ref, ssl_enabled: omitempty, protection_domain: omitempty,
        storage_pool: omitempty, storage_mode: omitempty, volume_name: omitempty,
        fs_type: omitempty, read_only: omitempty,
    }
    ScopeSelector {
        match_expressions,
    }
    ScopedResourceSelectorRequirement {
        scope_name, operator, values,
    }
    SeLinuxOptions as "SELinuxOptions" {
        user: omitempty, role: omitempty, r#type: omitempty, level: omitempty,
    }
    SeccompProfile {
        r#type, localhost_profile,
    }
    Secret {
        metadata, immutable, data, string_data, r#type: omitempty,
    }
    SecretEnvSource {
        local_object_reference: inline, optional,
    }
    SecretKeySelector {
        local_object_reference: inline, key, optional,
    }
    SecretProjection {
        local_object_reference: inline, items, optional,
    }
    SecretReference {
        name: omitempty, namespace: omitempty,
    }
    SecretVolumeSource {
        secret_name: omitempty, items, default_mode, optional,
    }
    SecurityContext {
        capabilities, privileged, se_linux_options, windows_options, run_as_user, run_as_group,
        run_as_non_root, read_only_root_filesystem, allow_privilege_escalation, proc_mount,
        seccomp_profile, app_armor_profile,
    }
    Service {
        metadata, spec, status,
    }
    ServiceAccount {
        metadata, secrets, image_pull_secrets, automount_service_account_token,
    }
    ServiceAccountTokenProjection {
        audience: omitempty, expiration_seconds, path,
    }
    ServicePort {
        name: omitempty, protocol: omitempty, app_protocol, port, target_port: omitempty,
        node_port: omitempty,
    }
    ServiceSpec {
        ports, selector, cluster_ip = "clusterIP": omitempty, cluster_ips = "clusterIPs",
        r#type: omitempty, external_ips = "externalIPs", session_affinity: omitempty,
        load_balancer_ip = "loadBalancerIP": omitempty, load_balancer_source_ranges,
        external_name: omitempty, external_traffic_policy: omitempty,
        health_check_node_port: omitempty, publish_not_ready_addresses: omitempty,
        session_affinity_config, ip_families, ip_family_policy, allocate_load_balancer_node_ports,
        load_balancer_class, internal_traffic_policy, traffic_distribution,
    }
    ServiceStatus {
        load_balancer, conditions,
    }
    SessionAffinityConfig {
        client_ip = "clientIP",
    }
    SleepAction {
        seconds,
    }
    StorageOsPersistentVolumeSource as "StorageOSPersistentVolumeSource" {
        volume_name: omitempty, volume_namespace: omitempty, fs_type: omitempty,
        read_only: omitempty, secret_ref,
    }
    StorageOsVolumeSource as "StorageOSVolumeSource" {
        volume_name: omitempty, volume_namespace: omitempty, fs_type: omitempty,
        read_only: omitempty, secret_ref,
    }
    Sysctl {
        name, value,
    }
    Taint {
        key, value: omitempty, effect, time_added,
    }
    TcpSocketAction as "TCPSocketAction" {
        port, host: omitempty,
    }
    Toleration {
        key: omitempty, operator: omitempty, value: omitempty, effect: omitempty,
        toleration_seconds,
    }
    TopologySpreadConstraint {
        max_skew, topology_key, when_unsatisfiable, label_selector, min_domains,
        node_affinity_policy, node_taints_policy, match_label_keys,
    }
    TypedLocalObjectReference {
        api_group, kind, name,
    }
    TypedObjectReference {
        api_group, kind, name, namespace,
    }
    Volume {
        name, volume_source: inline,
    }
    VolumeDevice {
        name, device_path,
    }
    VolumeMount {
        name, read_only: omitempty, recursive_read_only, mount_path, sub_path: omitempty,
        mount_propagation, sub_path_expr: omitempty,
    }
    VolumeMountStatus {
        name, mount_path, read_only: omitempty, recursive_read_only,
    }
    VolumeNodeAffinity {
        required,
    }
    VolumeProjection {
        secret, downward_api = "downwardAPI", config_map, service_account_token,
        cluster_trust_bundle, pod_certificate,
    }
    VolumeResourceRequirements {
        limits, requests,
    }
    VolumeSource as inline {
        host_path, empty_dir, gce_persistent_disk, aws_elastic_block_store, git_repo, secret, nfs,
        iscsi, glusterfs, persistent_volume_claim, rbd, flex_volume, cinder, cephfs, flocker,
        downward_api = "downwardAPI", fc, azure_file, config_map, vsphere_volume, quobyte,
        azure_disk, photon_persistent_disk, projected, portworx_volume, scale_io = "scaleIO",
        storageos, csi, ephemeral, image,
    }
    VsphereVirtualDiskVolumeSource {
        volume_path, fs_type: omitempty, storage_policy_name: omitempty,
        storage_policy_id = "storagePolicyID": omitempty,
    }
    WeightedPodAffinityTerm {
        weight, pod_affinity_term,
    }
    WindowsSecurityContextOptions {
        gmsa_credential_spec_name, gmsa_credential_spec, run_as_user_name, host_process,
    }
    WorkloadReference {
        name, pod_group, pod_group_replica_key: omitempty,
    }
}
