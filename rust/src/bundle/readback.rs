//! Reading a chunk's outputs back to the host without stalling the GPU.
//!
//! A plain read (`Tensor::to_vec2`) copies into pageable memory and waits for the whole stream,
//! so the next chunk could not be queued before the previous one was read: the GPU idled while
//! the host read, split and stored rows (1.0 ms of gaps per 256 x 128-token call on an H200,
//! benches/results/profile_gpu_h200_pipelined.log). On CUDA, `start` queues one asynchronous copy
//! of every float32 row head into a page-locked buffer and records an event; the caller queues the
//! next chunk, then `finish` waits for that event alone. Buffers are kept and reused (no
//! allocation per call once the largest chunk has been seen). Token heads, other dtypes and the
//! CPU are read the plain way in `finish`.

use std::sync::Mutex;

use candle_core::{Device, Tensor};

use super::outputs::{split_rows, RowOutput};
use crate::error::{Error, Result};
use crate::model::heads::HeadBatch;
use crate::tokenize::TokenBatch;

#[cfg(feature = "cuda")]
use candle_core::cuda_backend::cudarc::driver::{CudaEvent, PinnedHostSlice};

/// Page-locked buffers kept between calls.
#[cfg(feature = "cuda")]
const KEPT_BUFFERS: usize = 4;

pub(super) struct Readback {
    #[cfg(feature = "cuda")]
    buffers: Mutex<Vec<PinnedHostSlice<f32>>>,
    #[cfg(not(feature = "cuda"))]
    _buffers: Mutex<()>,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
enum Slot {
    /// Rows copied into the buffer at `offset`; the tensor is kept alive until the copy is done.
    Copied {
        offset: usize,
        rows: usize,
        columns: usize,
        _source: Tensor,
    },
    Later(HeadBatch),
}

pub(super) struct InFlight {
    slots: Vec<Slot>,
    #[cfg(feature = "cuda")]
    copy: Option<(PinnedHostSlice<f32>, CudaEvent)>,
}

/// Whether `start` copies on `device` asynchronously (CUDA, unless `VSR_ASYNC_READBACK=0`).
#[cfg(feature = "cuda")]
fn asynchronous(device: &Device) -> bool {
    device.is_cuda() && std::env::var("VSR_ASYNC_READBACK").map(|v| v != "0").unwrap_or(true)
}

/// A tensor `start` copies into page-locked memory at once (others are read in `finish`).
#[cfg(feature = "cuda")]
fn copyable(t: &Tensor) -> bool {
    t.dtype() == candle_core::DType::F32 && t.is_contiguous() && t.rank() == 2
}

/// Whether `start` copies every one of `outputs` before it returns, in stream order, so nothing
/// is read from device memory in `finish`: then outputs that a later launch on the same stream
/// overwrites (a CUDA graph's) may stay in flight while that launch is queued.
#[cfg(feature = "cuda")]
pub(super) fn copies_all(device: &Device, outputs: &[HeadBatch]) -> bool {
    asynchronous(device) && outputs.iter().all(|o| matches!(o, HeadBatch::Rows(t) if copyable(t)))
}

impl Readback {
    pub fn new() -> Self {
        Readback {
            #[cfg(feature = "cuda")]
            buffers: Mutex::new(Vec::new()),
            #[cfg(not(feature = "cuda"))]
            _buffers: Mutex::new(()),
        }
    }

    /// Queue the copies of `outputs` (asynchronous on CUDA).
    pub fn start(&self, device: &Device, outputs: Vec<HeadBatch>) -> Result<InFlight> {
        #[cfg(feature = "cuda")]
        if asynchronous(device) {
            return self.start_cuda(device, outputs);
        }
        let _ = device;
        Ok(InFlight {
            slots: outputs.into_iter().map(Slot::Later).collect(),
            #[cfg(feature = "cuda")]
            copy: None,
        })
    }

    #[cfg(feature = "cuda")]
    fn start_cuda(&self, device: &Device, outputs: Vec<HeadBatch>) -> Result<InFlight> {
        use candle_core::cuda_backend::cudarc::driver::{result, DevicePtr};

        let total: usize = outputs
            .iter()
            .map(|o| match o {
                HeadBatch::Rows(t) if copyable(t) => t.elem_count(),
                _ => 0,
            })
            .sum();
        if total == 0 {
            return Ok(InFlight { slots: outputs.into_iter().map(Slot::Later).collect(), copy: None });
        }
        let stream = device.as_cuda_device()?.cuda_stream();
        let mut buffer = self.take(&stream, total)?;
        let cuda_err = |e: candle_core::cuda_backend::cudarc::driver::DriverError| {
            Error::Inference(format!("CUDA read-back: {e:?}"))
        };
        let mut offset = 0;
        let mut slots = Vec::with_capacity(outputs.len());
        for output in outputs {
            let tensor = match &output {
                HeadBatch::Rows(t) if copyable(t) => t.clone(),
                _ => {
                    slots.push(Slot::Later(output));
                    continue;
                }
            };
            let (rows, columns) = tensor.dims2()?;
            {
                let (storage, layout) = tensor.storage_and_layout();
                let candle_core::Storage::Cuda(cuda) = &*storage else {
                    return Err(Error::Inference("read-back: a CUDA tensor without CUDA storage".into()));
                };
                let (start, end) = layout
                    .contiguous_offsets()
                    .ok_or_else(|| Error::Inference("read-back: not contiguous".into()))?;
                let source = cuda.as_cuda_slice::<f32>()?.slice(start..end);
                let (pointer, _record) = source.device_ptr(&stream);
                let target = &mut buffer.as_mut_slice().map_err(cuda_err)?[offset..offset + (end - start)];
                // SAFETY: `target` is page-locked memory owned by this read-back until `finish`
                // has waited for the event recorded after the copy; `pointer` is the tensor's
                // data, kept alive by the slot until then.
                unsafe { result::memcpy_dtoh_async(target, pointer, stream.cu_stream()) }
                    .map_err(cuda_err)?;
            }
            slots.push(Slot::Copied { offset, rows, columns, _source: tensor });
            offset += rows * columns;
        }
        let event = stream.record_event(None).map_err(cuda_err)?;
        Ok(InFlight { slots, copy: Some((buffer, event)) })
    }

    /// A kept buffer of at least `len` floats, or a new one.
    #[cfg(feature = "cuda")]
    fn take(
        &self,
        stream: &std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>,
        len: usize,
    ) -> Result<PinnedHostSlice<f32>> {
        let mut buffers =
            self.buffers.lock().map_err(|_| Error::Inference("read-back lock poisoned".into()))?;
        if let Some(at) = buffers.iter().position(|b| b.len() >= len) {
            return Ok(buffers.swap_remove(at));
        }
        drop(buffers);
        // Plain page-locked memory (not write-combined: the host reads it). Rounded up so a
        // slightly larger chunk later reuses it.
        // SAFETY: every element read in `finish` was written by the copy it waited for.
        unsafe { stream.context().alloc_pinned_with_flags::<f32>(len.next_power_of_two(), 0) }
            .map_err(|e| Error::Inference(format!("CUDA page-locked allocation: {e:?}")))
    }

    /// Wait for `flight`'s copies and split them into per-text rows (per head, in order).
    pub fn finish(&self, flight: InFlight, batch: &TokenBatch) -> Result<Vec<Vec<RowOutput>>> {
        #[cfg(feature = "cuda")]
        let copied: Option<&PinnedHostSlice<f32>> = match &flight.copy {
            Some((buffer, event)) => {
                event.synchronize().map_err(|e| Error::Inference(format!("CUDA read-back: {e:?}")))?;
                Some(buffer)
            }
            None => None,
        };
        let mut result = Vec::with_capacity(flight.slots.len());
        for slot in flight.slots {
            match slot {
                Slot::Later(output) => result.push(split_rows(output, batch)?),
                #[allow(unused_variables)]
                Slot::Copied { offset, rows, columns, .. } => {
                    #[cfg(feature = "cuda")]
                    {
                        let buffer =
                            copied.ok_or_else(|| Error::Inference("read-back lost its buffer".into()))?;
                        let data = buffer.as_slice().map_err(|e| Error::Inference(format!("{e:?}")))?;
                        let data = &data[offset..offset + rows * columns];
                        result.push(
                            data.chunks_exact(columns.max(1))
                                .map(|row| RowOutput::Row(row.to_vec()))
                                .collect(),
                        );
                    }
                    #[cfg(not(feature = "cuda"))]
                    return Err(Error::Inference("read-back: no CUDA in this build".into()));
                }
            }
        }
        #[cfg(feature = "cuda")]
        if let Some((buffer, _)) = flight.copy {
            if let Ok(mut buffers) = self.buffers.lock() {
                if buffers.len() < KEPT_BUFFERS {
                    buffers.push(buffer);
                }
            }
        }
        Ok(result)
    }
}
