//! Entry points for fuzzing what the store decodes from the network: etcd requests (with the
//! checks every request passes before it is proposed) and peer messages. The `fuzz/` crate's
//! cargo-fuzz targets and the suite's smoke run (`tests/fuzz_smoke.rs`) call these; each must
//! return normally for any input.

use keelson_proto::etcdserverpb as pb;
use prost::Message as _;

use crate::mvcc;
use crate::network::{self, PeerReply, PeerRequest};

/// A fuzz target: its name and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// The fuzz targets, by name.
pub const TARGETS: &[Target] = &[
    ("etcd_request", etcd_request),
    ("peer_message", peer_message),
];

/// The first byte picks the request type; the rest is its protobuf encoding.
pub fn etcd_request(data: &[u8]) {
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    match kind % 5 {
        0 => {
            if let Ok(r) = pb::RangeRequest::decode(body) {
                let _ = mvcc::check_range(&r);
            }
        }
        1 => {
            if let Ok(r) = pb::PutRequest::decode(body) {
                let _ = mvcc::check_put(&r);
            }
        }
        2 => {
            if let Ok(r) = pb::DeleteRangeRequest::decode(body) {
                let _ = mvcc::check_delete(&r);
            }
        }
        3 => {
            if let Ok(r) = pb::TxnRequest::decode(body) {
                if mvcc::check_txn(&r).is_ok() {
                    let _ = crate::types::quota_cost(&r);
                    let _ = mvcc::txn_has_writes(&r);
                }
            }
        }
        _ => {
            let _ = pb::WatchRequest::decode(body);
            let _ = pb::LeaseGrantRequest::decode(body);
        }
    }
}

/// A peer message as the peer port decodes it.
pub fn peer_message(data: &[u8]) {
    let _ = network::decode::<PeerRequest>(data);
    let _ = network::decode::<PeerReply>(data);
}
