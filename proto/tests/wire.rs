//! Byte-for-byte wire encodings, computed by hand from the protobuf encoding
//! rules (tag = field_number << 3 | wire_type). A wrong field number, type or
//! enum value in the `.proto` files changes these bytes.

use keelson_proto::{authpb, etcdserverpb as pb, mvccpb, v3electionpb, v3lockpb};
use prost::Message;

/// Encodes `msg`, compares with `expected`, and checks the bytes decode back.
fn check<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
    let bytes = msg.encode_to_vec();
    assert_eq!(bytes, expected, "encoding of {msg:?}");
    assert_eq!(
        &M::decode(expected).unwrap(),
        msg,
        "decoding of {expected:02x?}"
    );
}

#[test]
fn response_header() {
    let h = pb::ResponseHeader {
        cluster_id: 1,
        member_id: 2,
        revision: 3,
        raft_term: 4,
    };
    check(&h, &[0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4]);
}

#[test]
fn range_request_every_field() {
    let req = pb::RangeRequest {
        key: b"foo".to_vec(),
        range_end: b"fop".to_vec(),
        limit: 10,
        revision: 5,
        sort_order: pb::range_request::SortOrder::Descend as i32,
        sort_target: pb::range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 21,
        max_mod_revision: 22,
        min_create_revision: 23,
        max_create_revision: 24,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 3, b'f', b'o', b'o', // key = 1 (bytes)
        0x12, 3, b'f', b'o', b'p', // range_end = 2
        0x18, 10,                  // limit = 3
        0x20, 5,                   // revision = 4
        0x28, 2,                   // sort_order = 5: DESCEND
        0x30, 3,                   // sort_target = 6: MOD
        0x38, 1,                   // serializable = 7
        0x40, 1,                   // keys_only = 8
        0x48, 1,                   // count_only = 9
        0x50, 21,                  // min_mod_revision = 10
        0x58, 22,                  // max_mod_revision = 11
        0x60, 23,                  // min_create_revision = 12
        0x68, 24,                  // max_create_revision = 13
    ];
    check(&req, &expected);
}

#[test]
fn range_request_typical_etcdctl_get_prefix() {
    // The shape `etcdctl get --prefix --limit 10 --rev 5 --consistency=s foo` sends.
    let req = pb::RangeRequest {
        key: b"foo".to_vec(),
        range_end: b"fop".to_vec(),
        limit: 10,
        revision: 5,
        serializable: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 3, b'f', b'o', b'o',
        0x12, 3, b'f', b'o', b'p',
        0x18, 10,
        0x20, 5,
        0x38, 1,
    ];
    check(&req, &expected);
}

#[test]
fn key_value() {
    let kv = mvccpb::KeyValue {
        key: b"k".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 1,
        value: b"v".to_vec(),
        lease: 0x10,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 1, b'k', // key = 1
        0x10, 2,       // create_revision = 2
        0x18, 3,       // mod_revision = 3
        0x20, 1,       // version = 4
        0x2a, 1, b'v', // value = 5
        0x30, 0x10,    // lease = 6
    ];
    check(&kv, &expected);
}

#[test]
fn range_response() {
    let resp = pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            revision: 9,
            ..Default::default()
        }),
        kvs: vec![mvccpb::KeyValue {
            key: b"a".to_vec(),
            ..Default::default()
        }],
        more: true,
        count: 2,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 2, 0x18, 9,       // header = 1 { revision = 3 }
        0x12, 3, 0x0a, 1, b'a', // kvs = 2 { key = 1 }
        0x18, 1,                // more = 3
        0x20, 2,                // count = 4
    ];
    check(&resp, &expected);
}

#[test]
fn put_request() {
    let req = pb::PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease: 7,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    check(
        &req,
        &[
            0x0a, 1, b'k', 0x12, 1, b'v', 0x18, 7, 0x20, 1, 0x28, 1, 0x30, 1,
        ],
    );
}

#[test]
fn delete_range() {
    let req = pb::DeleteRangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        prev_kv: true,
    };
    check(&req, &[0x0a, 1, b'a', 0x12, 1, b'b', 0x18, 1]);
    let resp = pb::DeleteRangeResponse {
        header: None,
        deleted: 1,
        prev_kvs: vec![mvccpb::KeyValue::default()],
    };
    check(&resp, &[0x10, 1, 0x1a, 0]);
}

#[test]
fn compare_with_oneof_and_field_64() {
    let cmp = pb::Compare {
        result: pb::compare::CompareResult::Greater as i32,
        target: pb::compare::CompareTarget::Mod as i32,
        key: b"a".to_vec(),
        target_union: Some(pb::compare::TargetUnion::ModRevision(7)),
        range_end: b"b".to_vec(),
    };
    #[rustfmt::skip]
    let expected = [
        0x08, 1,                // result = 1: GREATER
        0x10, 2,                // target = 2: MOD
        0x1a, 1, b'a',          // key = 3
        0x30, 7,                // mod_revision = 6 (target_union)
        0x82, 0x04, 1, b'b',    // range_end = 64: tag 514 as a two-byte varint
    ];
    check(&cmp, &expected);

    let each = [
        (pb::compare::TargetUnion::Version(1), 0x20),
        (pb::compare::TargetUnion::CreateRevision(1), 0x28),
        (pb::compare::TargetUnion::ModRevision(1), 0x30),
        (pb::compare::TargetUnion::Lease(1), 0x40),
    ];
    for (target, tag) in each {
        let cmp = pb::Compare {
            target_union: Some(target),
            ..Default::default()
        };
        check(&cmp, &[tag, 1]);
    }
    let cmp = pb::Compare {
        result: pb::compare::CompareResult::NotEqual as i32,
        target: pb::compare::CompareTarget::Value as i32,
        target_union: Some(pb::compare::TargetUnion::Value(b"x".to_vec())),
        ..Default::default()
    };
    check(&cmp, &[0x08, 3, 0x10, 3, 0x3a, 1, b'x']);
    assert_eq!(pb::compare::CompareTarget::Lease as i32, 4);
}

#[test]
fn txn_with_nested_ops() {
    let req = pb::TxnRequest {
        compare: vec![pb::Compare::default()],
        success: vec![
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                    key: b"a".to_vec(),
                    ..Default::default()
                })),
            },
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(
                    pb::PutRequest::default(),
                )),
            },
        ],
        failure: vec![
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestDeleteRange(
                    pb::DeleteRangeRequest::default(),
                )),
            },
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(
                    pb::TxnRequest::default(),
                )),
            },
        ],
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0,                              // compare = 1
        0x12, 5, 0x0a, 3, 0x0a, 1, b'a',      // success = 2 { request_range = 1 { key } }
        0x12, 2, 0x12, 0,                     // success = 2 { request_put = 2 }
        0x1a, 2, 0x1a, 0,                     // failure = 3 { request_delete_range = 3 }
        0x1a, 2, 0x22, 0,                     // failure = 3 { request_txn = 4 }
    ];
    check(&req, &expected);

    let resp = pb::TxnResponse {
        header: None,
        succeeded: true,
        responses: vec![
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseRange(
                    pb::RangeResponse::default(),
                )),
            },
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponsePut(
                    pb::PutResponse::default(),
                )),
            },
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseDeleteRange(
                    pb::DeleteRangeResponse::default(),
                )),
            },
            pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseTxn(
                    pb::TxnResponse::default(),
                )),
            },
        ],
    };
    #[rustfmt::skip]
    let expected = [
        0x10, 1,
        0x1a, 2, 0x0a, 0,
        0x1a, 2, 0x12, 0,
        0x1a, 2, 0x1a, 0,
        0x1a, 2, 0x22, 0,
    ];
    check(&resp, &expected);
}

#[test]
fn compaction() {
    check(
        &pb::CompactionRequest {
            revision: 100,
            physical: true,
        },
        &[0x08, 100, 0x10, 1],
    );
}

#[test]
fn watch_create_request() {
    let req = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
                start_revision: 3,
                progress_notify: true,
                filters: vec![pb::watch_create_request::FilterType::Nodelete as i32],
                prev_kv: true,
                watch_id: 4,
                fragment: true,
            },
        )),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 19,       // create_request = 1 (19 bytes)
        0x0a, 1, b'a',  // key = 1
        0x12, 1, b'b',  // range_end = 2
        0x18, 3,        // start_revision = 3
        0x20, 1,        // progress_notify = 4
        0x2a, 1, 1,     // filters = 5, packed: [NODELETE]
        0x30, 1,        // prev_kv = 6
        0x38, 4,        // watch_id = 7
        0x40, 1,        // fragment = 8
    ];
    check(&req, &expected);

    let cancel = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 4 },
        )),
    };
    check(&cancel, &[0x12, 2, 0x08, 4]);
    let progress = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    };
    check(&progress, &[0x1a, 0]);
}

#[test]
fn watch_response_with_event() {
    let resp = pb::WatchResponse {
        header: None,
        watch_id: 3,
        created: true,
        canceled: true,
        compact_revision: 2,
        cancel_reason: "x".into(),
        fragment: true,
        events: vec![mvccpb::Event {
            r#type: mvccpb::event::EventType::Delete as i32,
            kv: Some(mvccpb::KeyValue {
                key: b"k".to_vec(),
                mod_revision: 9,
                ..Default::default()
            }),
            prev_kv: Some(mvccpb::KeyValue::default()),
        }],
    };
    #[rustfmt::skip]
    let expected = [
        0x10, 3,             // watch_id = 2
        0x18, 1,             // created = 3
        0x20, 1,             // canceled = 4
        0x28, 2,             // compact_revision = 5
        0x32, 1, b'x',       // cancel_reason = 6
        0x38, 1,             // fragment = 7
        0x5a, 11,            // events = 11
        0x08, 1,             //   type = 1: DELETE
        0x12, 5, 0x0a, 1, b'k', 0x18, 9, // kv = 2 { key, mod_revision }
        0x1a, 0,             //   prev_kv = 3
    ];
    check(&resp, &expected);
}

#[test]
fn leases() {
    check(
        &pb::LeaseGrantRequest { ttl: 60, id: 7 },
        &[0x08, 60, 0x10, 7],
    );
    check(
        &pb::LeaseGrantResponse {
            header: None,
            id: 7,
            ttl: 60,
            error: "e".into(),
        },
        &[0x10, 7, 0x18, 60, 0x22, 1, b'e'],
    );
    check(&pb::LeaseRevokeRequest { id: 7 }, &[0x08, 7]);
    check(&pb::LeaseKeepAliveRequest { id: 7 }, &[0x08, 7]);
    check(
        &pb::LeaseKeepAliveResponse {
            header: None,
            id: 7,
            ttl: 5,
        },
        &[0x10, 7, 0x18, 5],
    );
    check(
        &pb::LeaseTimeToLiveRequest { id: 7, keys: true },
        &[0x08, 7, 0x10, 1],
    );
    check(
        &pb::LeaseTimeToLiveResponse {
            header: None,
            id: 7,
            ttl: 5,
            granted_ttl: 60,
            keys: vec![b"k".to_vec()],
        },
        &[0x10, 7, 0x18, 5, 0x20, 60, 0x2a, 1, b'k'],
    );
    // -1 (lease not found) is a ten-byte varint for int64.
    let mut minus_one = vec![0x18];
    minus_one.extend([0xff; 9]);
    minus_one.push(0x01);
    check(
        &pb::LeaseTimeToLiveResponse {
            ttl: -1,
            ..Default::default()
        },
        &minus_one,
    );
    check(
        &pb::LeaseLeasesResponse {
            header: None,
            leases: vec![pb::LeaseStatus { id: 7 }],
        },
        &[0x12, 2, 0x08, 7],
    );
}

#[test]
fn members() {
    let m = pb::Member {
        id: 1,
        name: "a".into(),
        peer_ur_ls: vec!["p".into()],
        client_ur_ls: vec!["c".into()],
        is_learner: true,
    };
    check(
        &m,
        &[
            0x08, 1, 0x12, 1, b'a', 0x1a, 1, b'p', 0x22, 1, b'c', 0x28, 1,
        ],
    );
    check(
        &pb::MemberAddRequest {
            peer_ur_ls: vec!["p".into()],
            is_learner: true,
        },
        &[0x0a, 1, b'p', 0x10, 1],
    );
    check(
        &pb::MemberAddResponse {
            header: None,
            member: Some(pb::Member::default()),
            members: vec![pb::Member::default()],
        },
        &[0x12, 0, 0x1a, 0],
    );
    check(
        &pb::MemberUpdateRequest {
            id: 2,
            peer_ur_ls: vec!["p".into()],
        },
        &[0x08, 2, 0x12, 1, b'p'],
    );
    check(&pb::MemberListRequest { linearizable: true }, &[0x08, 1]);
}

#[test]
fn maintenance() {
    let status = pb::StatusResponse {
        header: None,
        version: "3.5.0".into(),
        db_size: 100,
        leader: 1,
        raft_index: 5,
        raft_term: 6,
        raft_applied_index: 7,
        errors: vec!["e".into()],
        db_size_in_use: 90,
        is_learner: true,
    };
    #[rustfmt::skip]
    let expected = [
        0x12, 5, b'3', b'.', b'5', b'.', b'0', // version = 2
        0x18, 100,                             // dbSize = 3
        0x20, 1,                               // leader = 4
        0x28, 5,                               // raftIndex = 5
        0x30, 6,                               // raftTerm = 6
        0x38, 7,                               // raftAppliedIndex = 7
        0x42, 1, b'e',                         // errors = 8
        0x48, 90,                              // dbSizeInUse = 9
        0x50, 1,                               // isLearner = 10
    ];
    check(&status, &expected);

    check(
        &pb::AlarmRequest {
            action: pb::alarm_request::AlarmAction::Deactivate as i32,
            member_id: 3,
            alarm: pb::AlarmType::Corrupt as i32,
        },
        &[0x08, 2, 0x10, 3, 0x18, 2],
    );
    check(
        &pb::AlarmResponse {
            header: None,
            alarms: vec![pb::AlarmMember {
                member_id: 3,
                alarm: pb::AlarmType::Nospace as i32,
            }],
        },
        &[0x12, 4, 0x08, 3, 0x10, 1],
    );
    check(
        &pb::HashKvResponse {
            header: None,
            hash: 0xffff_ffff,
            compact_revision: 2,
            hash_revision: 3,
        },
        &[0x10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x18, 2, 0x20, 3],
    );
    check(&pb::HashKvRequest { revision: 4 }, &[0x08, 4]);
    check(
        &pb::SnapshotResponse {
            header: None,
            remaining_bytes: 2,
            blob: vec![0xab],
        },
        &[0x10, 2, 0x1a, 1, 0xab],
    );
    check(&pb::MoveLeaderRequest { target_id: 9 }, &[0x08, 9]);
    check(
        &pb::DowngradeRequest {
            action: pb::downgrade_request::DowngradeAction::Cancel as i32,
            version: "3.4".into(),
        },
        &[0x08, 2, 0x12, 3, b'3', b'.', b'4'],
    );
}

#[test]
fn auth() {
    check(
        &pb::AuthUserAddRequest {
            name: "u".into(),
            password: "p".into(),
            options: Some(authpb::UserAddOptions { no_password: true }),
            hashed_password: "h".into(),
        },
        &[
            0x0a, 1, b'u', 0x12, 1, b'p', 0x1a, 2, 0x08, 1, 0x22, 1, b'h',
        ],
    );
    check(
        &pb::AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: Some(authpb::Permission {
                perm_type: authpb::permission::Type::Readwrite as i32,
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            }),
        },
        &[
            0x0a, 1, b'r', 0x12, 8, 0x08, 2, 0x12, 1, b'a', 0x1a, 1, b'b',
        ],
    );
    check(
        &pb::AuthStatusResponse {
            header: None,
            enabled: true,
            auth_revision: 5,
        },
        &[0x10, 1, 0x18, 5],
    );
    check(
        &pb::AuthUserGrantRoleRequest {
            user: "u".into(),
            role: "r".into(),
        },
        &[0x0a, 1, b'u', 0x12, 1, b'r'],
    );
    check(
        &pb::AuthRoleRevokePermissionRequest {
            role: "r".into(),
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        },
        &[0x0a, 1, b'r', 0x12, 1, b'a', 0x1a, 1, b'b'],
    );
    check(
        &authpb::User {
            name: b"u".to_vec(),
            password: b"p".to_vec(),
            roles: vec!["r".into()],
            options: Some(authpb::UserAddOptions::default()),
        },
        &[0x0a, 1, b'u', 0x12, 1, b'p', 0x1a, 1, b'r', 0x22, 0],
    );
    check(
        &authpb::Role {
            name: b"r".to_vec(),
            key_permission: vec![authpb::Permission::default()],
        },
        &[0x0a, 1, b'r', 0x12, 0],
    );
}

#[test]
fn lock_and_election() {
    check(
        &v3lockpb::LockRequest {
            name: b"n".to_vec(),
            lease: 7,
        },
        &[0x0a, 1, b'n', 0x10, 7],
    );
    check(
        &v3lockpb::LockResponse {
            header: Some(pb::ResponseHeader::default()),
            key: b"k".to_vec(),
        },
        &[0x0a, 0, 0x12, 1, b'k'],
    );
    check(
        &v3lockpb::UnlockRequest { key: b"k".to_vec() },
        &[0x0a, 1, b'k'],
    );

    let leader = v3electionpb::LeaderKey {
        name: b"n".to_vec(),
        key: b"k".to_vec(),
        rev: 3,
        lease: 4,
    };
    check(&leader, &[0x0a, 1, b'n', 0x12, 1, b'k', 0x18, 3, 0x20, 4]);
    check(
        &v3electionpb::CampaignRequest {
            name: b"n".to_vec(),
            lease: 4,
            value: b"v".to_vec(),
        },
        &[0x0a, 1, b'n', 0x10, 4, 0x1a, 1, b'v'],
    );
    check(
        &v3electionpb::ProclaimRequest {
            leader: Some(v3electionpb::LeaderKey::default()),
            value: b"v".to_vec(),
        },
        &[0x0a, 0, 0x12, 1, b'v'],
    );
    check(
        &v3electionpb::LeaderResponse {
            header: None,
            kv: Some(mvccpb::KeyValue::default()),
        },
        &[0x12, 0],
    );
}
