#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keelson_store::fuzz::etcd_request(data));
