#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keelson_apiserver::fuzz::decode_yaml(data));
