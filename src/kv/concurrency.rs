//! Lease-based concurrency recipes (session, mutex, election) like etcd's clientv3/concurrency.
