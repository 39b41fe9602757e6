//! The built-in catalogue of standard vision architectures' front ends, for `blindspot survey`:
//! what each reference implementation feeds its first linear layer, and that layer's geometry.
//! Only the geometry is stored; the survey computes every count from it with the operator
//! machinery `audit` uses (random, generic weights), never from a formula typed in here.

/// What sits between the image tensor and the first linear layer besides a per-channel
/// normalisation (which is invertible and changes no count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeforeFirstLayer {
    /// The normalised image goes straight into the layer.
    Nothing,
    /// Space-to-depth by `block` (YOLOv5's Focus: four strided Slices and a Concat): a
    /// permutation of the pixels, C×H×W → (C·block²)×(H/block)×(W/block).
    SpaceToDepth { block: usize },
}

/// The first linear layer, as a 2-D convolution (patch embeddings and per-patch dense layers are
/// convolutions with stride = kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstConv {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl FirstConv {
    /// A square k×k convolution with stride s and padding p on every side, ungrouped.
    pub const fn square(out_channels: usize, k: usize, s: usize, p: usize) -> Self {
        FirstConv {
            out_channels,
            kernel: [k, k],
            stride: [s, s],
            pads: [p; 4],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// A patch embedding: p×p patches, stride p, no padding.
    pub const fn patches(out_channels: usize, p: usize) -> Self {
        Self::square(out_channels, p, p, 0)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Architecture {
    pub name: &'static str,
    /// For grouping in tables and the figure.
    pub family: &'static str,
    pub task: &'static str,
    /// Channels, height, width of the image tensor the reference implementation feeds.
    pub input: [usize; 3],
    /// The preprocessing in front of the model, as the reference implementation does it.
    pub preprocessing: &'static str,
    pub before: BeforeFirstLayer,
    pub first_layer: FirstConv,
    /// The paper or reference implementation the geometry is taken from.
    pub source: &'static str,
}

/// Families, in the order tables and the figure show them.
pub const FAMILIES: &[&str] = &[
    "classic CNN",
    "ResNet and DenseNet",
    "efficient CNN",
    "modern CNN",
    "vision transformer",
    "self-supervised / multimodal ViT",
    "MLP and mixer",
    "segmentation",
    "detection",
];

const IMAGENET: &str = "RGB in [0, 1], ImageNet mean/std per channel";

pub const CATALOGUE: &[Architecture] = &[
    // He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; torchvision
    // resnet50: conv1 = Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False).
    Architecture {
        name: "ResNet-50",
        family: "ResNet and DenseNet",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "He et al. 2016 (arXiv 1512.03385); torchvision.models.resnet50",
    },
    // Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; timm
    // vit_base_patch32_224: PatchEmbed Conv2d(3, 768, kernel_size=32, stride=32).
    Architecture {
        name: "ViT-B/32",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: "RGB in [0, 1], mean = std = 0.5 per channel",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 32),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_base_patch32_224",
    },
    // Jocher et al., ultralytics/yolov5 v5.0, models/common.py Focus: x[..., ::2, ::2] etc.
    // concatenated (3 → 12 channels at half resolution), then Conv(12, 32, k=3, s=1, p=1).
    Architecture {
        name: "YOLOv5s",
        family: "detection",
        task: "object detection",
        input: [3, 640, 640],
        preprocessing: "RGB in [0, 1] (pixels / 255), letterboxed to 640",
        before: BeforeFirstLayer::SpaceToDepth { block: 2 },
        first_layer: FirstConv::square(32, 3, 1, 1),
        source: "ultralytics/yolov5 v5.0, models/common.py (Focus) and models/yolov5s.yaml",
    },
];
