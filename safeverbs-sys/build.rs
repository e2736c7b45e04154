//! Generates the libibverbs bindings with bindgen.
//!
//! The library is found with pkg-config (`libibverbs >= 1.8`, rdma-core 25+);
//! `SAFEVERBS_SYS_INCLUDE_DIR` and `SAFEVERBS_SYS_LIB_DIR` bypass pkg-config.
//! Every way this can fail ends in one message naming the Debian packages to
//! install, not a wall of bindgen output.

use std::env;
use std::path::{Path, PathBuf};

const PACKAGES: &str = "libibverbs-dev librdmacm-dev pkg-config libclang-dev";

/// Stops the build with one clear message.
fn fail(what: &str) -> ! {
    eprintln!();
    eprintln!("error: safeverbs-sys cannot build: {what}");
    eprintln!("  On Debian/Ubuntu install the build dependencies with:");
    eprintln!("    apt-get install {PACKAGES}");
    eprintln!(
        "  (or set SAFEVERBS_SYS_INCLUDE_DIR / SAFEVERBS_SYS_LIB_DIR to an rdma-core install)"
    );
    eprintln!();
    std::process::exit(1);
}

/// Include directories of libibverbs (and librdmacm), and links them.
fn locate(rdmacm: bool) -> Vec<PathBuf> {
    println!("cargo:rerun-if-env-changed=SAFEVERBS_SYS_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=SAFEVERBS_SYS_LIB_DIR");
    if let Ok(include) = env::var("SAFEVERBS_SYS_INCLUDE_DIR") {
        if let Ok(lib) = env::var("SAFEVERBS_SYS_LIB_DIR") {
            println!("cargo:rustc-link-search=native={lib}");
        }
        println!("cargo:rustc-link-lib=ibverbs");
        if rdmacm {
            println!("cargo:rustc-link-lib=rdmacm");
        }
        return vec![PathBuf::from(include)];
    }
    let probe = |name: &str, version: &str| {
        pkg_config::Config::new()
            .atleast_version(version)
            .probe(name)
            .unwrap_or_else(|e| {
                fail(&format!(
                    "pkg-config could not find {name} >= {version}: {e}"
                ))
            })
    };
    let mut includes = probe("libibverbs", "1.8").include_paths;
    if rdmacm {
        includes.extend(probe("librdmacm", "1.2").include_paths);
    }
    includes
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    let rdmacm = env::var_os("CARGO_FEATURE_RDMACM").is_some();
    let includes = locate(rdmacm);

    let found = ["/usr/include".into(), "/usr/local/include".into()]
        .iter()
        .chain(&includes)
        .any(|dir: &PathBuf| Path::new(dir).join("infiniband/verbs.h").exists());
    if !found {
        fail("the header <infiniband/verbs.h> was not found");
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(includes.iter().map(|p| format!("-I{}", p.display())))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // Only what the library uses.
        .allowlist_function("ibv_.*|_ibv_.*")
        .allowlist_type("ibv_.*|verbs_.*|_compat_ibv_port_attr")
        .allowlist_var("IBV_.*")
        // These names are macros over static inline functions in verbs.h; the
        // crate provides them in `inline.rs` (ibv_query_port's exported symbol
        // takes a compat struct and is declared there under another name).
        .blocklist_function("ibv_query_port")
        // Values that C writes are never Rust enums (an unknown value would be
        // undefined behaviour): plain enums become `u32` newtypes with
        // associated constants, flag sets become bitfield newtypes.
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .bitfield_enum(
            "ibv_access_flags|ibv_send_flags|ibv_qp_attr_mask|ibv_wc_flags|\
             ibv_device_cap_flags|ibv_port_cap_flags|ibv_odp_transport_cap_bits|\
             ibv_create_cq_attr_flags|ibv_wc_flags_ex|ibv_qp_init_attr_mask",
        )
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .formatter(bindgen::Formatter::None);
    if rdmacm {
        builder = builder
            .clang_arg("-DSAFEVERBS_SYS_RDMACM")
            .allowlist_function("rdma_.*")
            .allowlist_type("rdma_.*")
            .allowlist_var("RDMA_.*");
    }

    // libclang is loaded at run time; when it is missing bindgen panics with a
    // long message. Catch that and say what to install instead.
    std::panic::set_hook(Box::new(|_| {}));
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    let _ = std::panic::take_hook();
    let bindings = match generated {
        Ok(Ok(bindings)) => bindings,
        Ok(Err(e)) => fail(&format!(
            "bindgen could not parse <infiniband/verbs.h>: {e}"
        )),
        Err(_) => fail("libclang, which bindgen needs, could not be loaded"),
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set")));
    if let Err(e) = bindings.write_to_file(out.join("bindings.rs")) {
        fail(&format!("could not write the bindings: {e}"));
    }
}
