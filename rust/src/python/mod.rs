//! The only PyO3 code: the `vsr._core` module and the one door through which every heavy call
//! passes (GIL released, errors converted in one place). The exception classes are defined in
//! Python (`vsr.errors`, so pure-Python modules catch them without the native core) and raised
//! from here; `_core` re-exports them.

use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use pyo3::exceptions::PyValueError;
use pyo3::import_exception;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::bundle::{Bundle, HeadOutput};
use crate::error::Error;

mod extproc;

import_exception!(vsr.errors, VsrError);
import_exception!(vsr.errors, ModelLoadError);
import_exception!(vsr.errors, DeviceError);
import_exception!(vsr.errors, InferenceError);

fn to_python_error(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::Load { .. } | Error::Unsupported { .. } => ModelLoadError::new_err(message),
        Error::Device(_) => DeviceError::new_err(message),
        Error::Argument(_) => PyValueError::new_err(message),
        Error::Inference(_) => InferenceError::new_err(message),
    }
}

/// The one door: run `work` without the GIL, so other Python threads (the event loop) keep going,
/// and turn its error into the matching Python exception.
fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    py.detach(work).map_err(to_python_error)
}

/// An encoder with named heads, loaded from a Hugging Face model directory.
#[pyclass(frozen, name = "Encoder", module = "vsr._core")]
struct PyEncoder {
    bundle: Bundle,
}

#[pymethods]
impl PyEncoder {
    /// `heads`: JSON object of name -> head spec; `branches`: JSON object of name -> branch spec
    /// (`{"from_layer": k, "weights": FILE}`), read by heads that name one in `branch`.
    #[staticmethod]
    #[pyo3(signature = (model_dir, heads, device = "cpu", dtype = None, max_length = None, branches = None))]
    fn load(
        py: Python<'_>,
        model_dir: PathBuf,
        heads: String,
        device: &str,
        dtype: Option<String>,
        max_length: Option<usize>,
        branches: Option<String>,
    ) -> PyResult<Self> {
        let device = device.to_string();
        let bundle = detached(py, move || {
            Bundle::load_with_branches(
                &model_dir,
                &heads,
                branches.as_deref(),
                &device,
                dtype.as_deref(),
                max_length,
            )
        })?;
        Ok(PyEncoder { bundle })
    }

    #[getter]
    fn device(&self) -> String {
        self.bundle.device_name()
    }
    #[getter]
    fn dtype(&self) -> &'static str {
        self.bundle.dtype_name()
    }
    #[getter]
    fn hidden_size(&self) -> usize {
        self.bundle.hidden_size()
    }
    #[getter]
    fn max_length(&self) -> usize {
        self.bundle.max_length()
    }
    #[getter]
    fn architecture(&self) -> &'static str {
        self.bundle.architecture()
    }

    /// (name, kind) of each head, kind being "embedding", "sequence" or "token".
    fn heads(&self) -> Vec<(String, &'static str)> {
        self.bundle.head_kinds()
    }

    fn count_tokens(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<usize>> {
        detached(py, || self.bundle.count_tokens(&texts))
    }

    /// Run `heads` (all when None) on one encoder pass over `texts`. Returns a dict: per head a
    /// float32 array (n, columns), or for token heads a list of (probabilities, offsets) arrays.
    #[pyo3(signature = (texts, heads = None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        heads: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let outputs = detached(py, || self.bundle.run(&texts, heads.as_deref()))?;
        let result = PyDict::new(py);
        for (name, output) in outputs {
            match output {
                HeadOutput::Matrix { rows, columns, data } => {
                    result.set_item(name, matrix(py, rows, columns, data)?)?;
                }
                HeadOutput::Tokens(texts) => {
                    let items = texts
                        .into_iter()
                        .map(|scores| {
                            let tokens = scores.offsets.len();
                            let probabilities = matrix(py, tokens, scores.labels, scores.probabilities)?;
                            let flat: Vec<i64> =
                                scores.offsets.iter().flat_map(|&(s, e)| [s as i64, e as i64]).collect();
                            let offsets = matrix(py, tokens, 2, flat)?;
                            PyTuple::new(py, [probabilities, offsets])
                        })
                        .collect::<PyResult<Vec<_>>>()?;
                    result.set_item(name, PyList::new(py, items)?)?;
                }
            }
        }
        Ok(result)
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder(architecture={:?}, device={:?}, dtype={:?}, heads={:?})",
            self.bundle.architecture(),
            self.bundle.device_name(),
            self.bundle.dtype_name(),
            self.bundle.head_names()
        )
    }
}

fn matrix<T: numpy::Element>(
    py: Python<'_>,
    rows: usize,
    columns: usize,
    data: Vec<T>,
) -> PyResult<Bound<'_, PyAny>> {
    let array = Array2::from_shape_vec((rows, columns), data)
        .map_err(|e| InferenceError::new_err(format!("output shape mismatch: {e}")))?;
    Ok(array.into_pyarray(py).into_any())
}

/// Whether this build can use CUDA devices.
#[pyfunction]
fn cuda_available() -> bool {
    cfg!(feature = "cuda")
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyEncoder>()?;
    m.add_class::<extproc::PyExtProcServer>()?;
    m.add("VsrError", py.get_type::<VsrError>())?;
    m.add("ModelLoadError", py.get_type::<ModelLoadError>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add("InferenceError", py.get_type::<InferenceError>())?;
    m.add_function(wrap_pyfunction!(cuda_available, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
