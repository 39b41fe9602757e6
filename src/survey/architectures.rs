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
const HALF: &str = "RGB in [0, 1], mean = std = 0.5 per channel";
const CLIP: &str = "RGB in [0, 1], CLIP mean (0.4815, 0.4578, 0.4082) / std (0.2686, 0.2613, 0.2758)";
const YOLO: &str = "RGB in [0, 1] (pixels / 255), letterboxed to 640";

pub const CATALOGUE: &[Architecture] = &[
    // ---------------------------------------------------------------- classic CNN
    // LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998
    // (no arXiv): layer C1 has "six feature maps" of 28×28, each unit connected to a "5x5
    // neighborhood in the input" of 32×32, i.e. Conv2d(1, 6, kernel_size=5, stride=1), unpadded.
    Architecture {
        name: "LeNet-5",
        family: "classic CNN",
        task: "digit classification",
        input: [1, 32, 32],
        preprocessing: "grey levels scaled so background = -0.1 and foreground = 1.175",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(6, 5, 1, 0),
        source: "LeCun et al. 1998, Proc. IEEE 86(11), layer C1",
    },
    // Krizhevsky et al., NeurIPS 2012; torchvision alexnet follows the one-GPU variant of
    // Krizhevsky, "One weird trick" (arXiv 1404.5997): features[0] =
    // nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2).
    Architecture {
        name: "AlexNet",
        family: "classic CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 11, 4, 2),
        source: "Krizhevsky 2014 (arXiv 1404.5997); torchvision.models.alexnet",
    },
    // Simonyan & Zisserman, "Very Deep Convolutional Networks" (arXiv 1409.1556); torchvision
    // vgg16 (make_layers, cfg "D"): nn.Conv2d(3, 64, kernel_size=3, padding=1).
    Architecture {
        name: "VGG-16",
        family: "classic CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 3, 1, 1),
        source: "Simonyan & Zisserman 2015 (arXiv 1409.1556); torchvision.models.vgg16",
    },
    // Szegedy et al., "Going Deeper with Convolutions" (arXiv 1409.4842); torchvision googlenet:
    // conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3). The pretrained weights set
    // transform_input=True, a per-channel affine re-mapping to mean = std = 0.5 inside the model.
    Architecture {
        name: "GoogLeNet",
        family: "classic CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: "RGB in [0, 1], ImageNet mean/std, re-mapped in the model to mean = std = 0.5",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "Szegedy et al. 2015 (arXiv 1409.4842); torchvision.models.googlenet",
    },
    // Szegedy et al., "Rethinking the Inception Architecture" (arXiv 1512.00567); torchvision
    // inception_v3: Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2), no padding;
    // weights transforms crop 299. transform_input=True as for GoogLeNet.
    Architecture {
        name: "Inception-v3",
        family: "classic CNN",
        task: "classification",
        input: [3, 299, 299],
        preprocessing: "RGB in [0, 1], ImageNet mean/std, re-mapped in the model to mean = std = 0.5",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 3, 2, 0),
        source: "Szegedy et al. 2016 (arXiv 1512.00567); torchvision.models.inception_v3",
    },
    // Chollet, "Xception" (arXiv 1610.02357); timm legacy_xception (the Keras port, 299 input):
    // conv1 = nn.Conv2d(in_chans, 32, 3, 2, 0, bias=False).
    Architecture {
        name: "Xception",
        family: "classic CNN",
        task: "classification",
        input: [3, 299, 299],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 3, 2, 0),
        source: "Chollet 2017 (arXiv 1610.02357); timm legacy_xception",
    },
    // ---------------------------------------------------------------- ResNet and DenseNet
    // He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; torchvision
    // resnet18: conv1 = Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False).
    Architecture {
        name: "ResNet-18",
        family: "ResNet and DenseNet",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "He et al. 2016 (arXiv 1512.03385); torchvision.models.resnet18",
    },
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
    // He et al. 2016 (arXiv 1512.03385); torchvision resnet101:
    // conv1 = Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False).
    Architecture {
        name: "ResNet-101",
        family: "ResNet and DenseNet",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "He et al. 2016 (arXiv 1512.03385); torchvision.models.resnet101",
    },
    // He et al. 2016 (arXiv 1512.03385); torchvision resnet152:
    // conv1 = Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False).
    Architecture {
        name: "ResNet-152",
        family: "ResNet and DenseNet",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "He et al. 2016 (arXiv 1512.03385); torchvision.models.resnet152",
    },
    // Huang et al., "Densely Connected Convolutional Networks" (arXiv 1608.06993); torchvision
    // densenet121: conv0 = nn.Conv2d(3, num_init_features=64, kernel_size=7, stride=2,
    // padding=3, bias=False).
    Architecture {
        name: "DenseNet-121",
        family: "ResNet and DenseNet",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "Huang et al. 2017 (arXiv 1608.06993); torchvision.models.densenet121",
    },
    // ---------------------------------------------------------------- efficient CNN
    // Iandola et al., "SqueezeNet" (arXiv 1602.07360); torchvision squeezenet1_1: features[0] =
    // nn.Conv2d(3, 64, kernel_size=3, stride=2), no padding (on 224 the last row and column
    // fall in no window).
    Architecture {
        name: "SqueezeNet 1.1",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 3, 2, 0),
        source: "Iandola et al. 2016 (arXiv 1602.07360); torchvision.models.squeezenet1_1",
    },
    // Sandler et al., "MobileNetV2" (arXiv 1801.04381); torchvision mobilenet_v2: features[0] =
    // Conv2dNormActivation(3, 32, stride=2, activation_layer=nn.ReLU6), kernel_size=3 and
    // padding=(3 - 1) // 2 = 1 by default.
    Architecture {
        name: "MobileNetV2",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 3, 2, 1),
        source: "Sandler et al. 2018 (arXiv 1801.04381); torchvision.models.mobilenet_v2",
    },
    // Howard et al., "Searching for MobileNetV3" (arXiv 1905.02244); torchvision
    // mobilenet_v3_large: Conv2dNormActivation(3, 16, kernel_size=3, stride=2,
    // activation_layer=nn.Hardswish), padding 1.
    Architecture {
        name: "MobileNetV3-Large",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(16, 3, 2, 1),
        source: "Howard et al. 2019 (arXiv 1905.02244); torchvision.models.mobilenet_v3_large",
    },
    // Ma et al., "ShuffleNet V2" (arXiv 1807.11164); torchvision shufflenet_v2_x1_0: conv1 =
    // nn.Conv2d(3, 24, 3, 2, 1, bias=False).
    Architecture {
        name: "ShuffleNetV2 x1.0",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(24, 3, 2, 1),
        source: "Ma et al. 2018 (arXiv 1807.11164); torchvision.models.shufflenet_v2_x1_0",
    },
    // Tan & Le, "EfficientNet" (arXiv 1905.11946); torchvision efficientnet_b0:
    // Conv2dNormActivation(3, 32, kernel_size=3, stride=2, activation_layer=nn.SiLU), padding 1
    // on all sides. (The TF reference pads "SAME", [0, 0, 1, 1] on 224; PyTorch's is used.)
    Architecture {
        name: "EfficientNet-B0",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 3, 2, 1),
        source: "Tan & Le 2019 (arXiv 1905.11946); torchvision.models.efficientnet_b0",
    },
    // Tan & Le 2019 (arXiv 1905.11946); torchvision efficientnet_b7 (width 2.0, weights
    // transforms crop 600): Conv2dNormActivation(3, 64, kernel_size=3, stride=2,
    // activation_layer=nn.SiLU), padding 1. (TF "SAME" would pad [0, 0, 1, 1] on 600.)
    Architecture {
        name: "EfficientNet-B7",
        family: "efficient CNN",
        task: "classification",
        input: [3, 600, 600],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 3, 2, 1),
        source: "Tan & Le 2019 (arXiv 1905.11946); torchvision.models.efficientnet_b7",
    },
    // Tan & Le, "EfficientNetV2" (arXiv 2104.00298); torchvision efficientnet_v2_s (weights
    // transforms crop 384): Conv2dNormActivation(3, 24, kernel_size=3, stride=2,
    // activation_layer=nn.SiLU), padding 1.
    Architecture {
        name: "EfficientNetV2-S",
        family: "efficient CNN",
        task: "classification",
        input: [3, 384, 384],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(24, 3, 2, 1),
        source: "Tan & Le 2021 (arXiv 2104.00298); torchvision.models.efficientnet_v2_s",
    },
    // Radosavovic et al., "Designing Network Design Spaces" (arXiv 2003.13678); torchvision
    // regnet_x_400mf: SimpleStemIN = Conv2dNormActivation(3, 32, kernel_size=3, stride=2),
    // padding 1.
    Architecture {
        name: "RegNetX-400MF",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 3, 2, 1),
        source: "Radosavovic et al. 2020 (arXiv 2003.13678); torchvision.models.regnet_x_400mf",
    },
    // Radosavovic et al. 2020 (arXiv 2003.13678); torchvision regnet_y_400mf: SimpleStemIN =
    // Conv2dNormActivation(3, 32, kernel_size=3, stride=2), padding 1.
    Architecture {
        name: "RegNetY-400MF",
        family: "efficient CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 3, 2, 1),
        source: "Radosavovic et al. 2020 (arXiv 2003.13678); torchvision.models.regnet_y_400mf",
    },
    // ---------------------------------------------------------------- modern CNN
    // Liu et al., "A ConvNet for the 2020s" (arXiv 2201.03545); facebookresearch/ConvNeXt and
    // torchvision convnext_tiny: stem nn.Conv2d(in_chans, dims[0]=96, kernel_size=4, stride=4).
    Architecture {
        name: "ConvNeXt-T",
        family: "modern CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(96, 4),
        source: "Liu et al. 2022 (arXiv 2201.03545); facebookresearch/ConvNeXt, torchvision",
    },
    // Liu et al. 2022 (arXiv 2201.03545); torchvision convnext_base: stem
    // nn.Conv2d(in_chans, dims[0]=128, kernel_size=4, stride=4).
    Architecture {
        name: "ConvNeXt-B",
        family: "modern CNN",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(128, 4),
        source: "Liu et al. 2022 (arXiv 2201.03545); facebookresearch/ConvNeXt, torchvision",
    },
    // ---------------------------------------------------------------- vision transformer
    // Steiner et al., "How to train your ViT?" (arXiv 2106.10270) for the Ti size; timm
    // vit_tiny_patch16_224: PatchEmbed Conv2d(3, 192, kernel_size=16, stride=16).
    Architecture {
        name: "ViT-Ti/16",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(192, 16),
        source: "Steiner et al. 2022 (arXiv 2106.10270); timm vit_tiny_patch16_224",
    },
    // Steiner et al. (arXiv 2106.10270); timm vit_small_patch16_224: PatchEmbed
    // Conv2d(3, 384, kernel_size=16, stride=16).
    Architecture {
        name: "ViT-S/16",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(384, 16),
        source: "Steiner et al. 2022 (arXiv 2106.10270); timm vit_small_patch16_224",
    },
    // Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; timm
    // vit_base_patch8_224: PatchEmbed Conv2d(3, 768, kernel_size=8, stride=8).
    Architecture {
        name: "ViT-B/8",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 8),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_base_patch8_224",
    },
    // Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_base_patch16_224: PatchEmbed
    // Conv2d(3, 768, kernel_size=16, stride=16).
    Architecture {
        name: "ViT-B/16",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 16),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_base_patch16_224",
    },
    // Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; timm
    // vit_base_patch32_224: PatchEmbed Conv2d(3, 768, kernel_size=32, stride=32).
    Architecture {
        name: "ViT-B/32",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 32),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_base_patch32_224",
    },
    // Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_large_patch16_224: PatchEmbed
    // Conv2d(3, 1024, kernel_size=16, stride=16).
    Architecture {
        name: "ViT-L/16",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(1024, 16),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_large_patch16_224",
    },
    // Dosovitskiy et al. 2021 (arXiv 2010.11929); torchvision vit_l_32 (IMAGENET1K_V1, crop
    // 224, ImageNet mean/std): conv_proj = nn.Conv2d(3, 1024, kernel_size=32, stride=32).
    Architecture {
        name: "ViT-L/32",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(1024, 32),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); torchvision.models.vit_l_32",
    },
    // Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_huge_patch14_224 (the ImageNet-21k
    // checkpoint at 224; torchvision's vit_h_14 SWAG weights run at 518): PatchEmbed
    // Conv2d(3, 1280, kernel_size=14, stride=14).
    Architecture {
        name: "ViT-H/14",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(1280, 14),
        source: "Dosovitskiy et al. 2021 (arXiv 2010.11929); timm vit_huge_patch14_224",
    },
    // Touvron et al., "Training data-efficient image transformers" (arXiv 2012.12877);
    // facebookresearch/deit deit_small_patch16_224: PatchEmbed Conv2d(3, 384, kernel_size=16,
    // stride=16).
    Architecture {
        name: "DeiT-S",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(384, 16),
        source: "Touvron et al. 2021 (arXiv 2012.12877); facebookresearch/deit",
    },
    // Liu et al., "Swin Transformer" (arXiv 2103.14030); microsoft/Swin-Transformer swin_tiny:
    // PatchEmbed nn.Conv2d(in_chans, embed_dim=96, kernel_size=patch_size=4, stride=4).
    Architecture {
        name: "Swin-T",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(96, 4),
        source: "Liu et al. 2021 (arXiv 2103.14030); microsoft/Swin-Transformer, torchvision",
    },
    // Liu et al. 2021 (arXiv 2103.14030); microsoft/Swin-Transformer swin_base_patch4_window7:
    // PatchEmbed nn.Conv2d(in_chans, embed_dim=128, kernel_size=4, stride=4).
    Architecture {
        name: "Swin-B",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(128, 4),
        source: "Liu et al. 2021 (arXiv 2103.14030); microsoft/Swin-Transformer, torchvision",
    },
    // Wang et al., "PVT v2" (arXiv 2106.13797); whai362/PVT pvt_v2_b0: OverlapPatchEmbed
    // patch_size=7, stride=4, embed_dim=32: nn.Conv2d(3, 32, kernel_size=7, stride=4,
    // padding=(7 // 2, 7 // 2)).
    Architecture {
        name: "PVTv2-b0",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 7, 4, 3),
        source: "Wang et al. 2022 (arXiv 2106.13797); whai362/PVT pvt_v2_b0",
    },
    // Tu et al., "MaxViT" (arXiv 2204.01697); torchvision maxvit_t: stem[0] =
    // Conv2dNormActivation(3, 64, 3, stride=2, activation_layer=nn.GELU, bias=False), padding 1.
    Architecture {
        name: "MaxViT-T",
        family: "vision transformer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 3, 2, 1),
        source: "Tu et al. 2022 (arXiv 2204.01697); torchvision.models.maxvit_t",
    },
    // ---------------------------------------------------------------- self-supervised / multimodal
    // Radford et al., "Learning Transferable Visual Models From Natural Language Supervision"
    // (arXiv 2103.00020); openai/CLIP ViT-B/32: conv1 = nn.Conv2d(in_channels=3,
    // out_channels=768, kernel_size=32, stride=32, bias=False).
    Architecture {
        name: "CLIP ViT-B/32",
        family: "self-supervised / multimodal ViT",
        task: "image-text embedding",
        input: [3, 224, 224],
        preprocessing: CLIP,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 32),
        source: "Radford et al. 2021 (arXiv 2103.00020); openai/CLIP ViT-B/32",
    },
    // Radford et al. 2021 (arXiv 2103.00020); openai/CLIP ViT-L/14: conv1 =
    // nn.Conv2d(in_channels=3, out_channels=1024, kernel_size=14, stride=14, bias=False).
    Architecture {
        name: "CLIP ViT-L/14",
        family: "self-supervised / multimodal ViT",
        task: "image-text embedding",
        input: [3, 224, 224],
        preprocessing: CLIP,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(1024, 14),
        source: "Radford et al. 2021 (arXiv 2103.00020); openai/CLIP ViT-L/14",
    },
    // Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (arXiv 2303.15343);
    // google-research/big_vision, timm vit_base_patch16_siglip_224: PatchEmbed
    // Conv2d(3, 768, kernel_size=16, stride=16).
    Architecture {
        name: "SigLIP ViT-B/16",
        family: "self-supervised / multimodal ViT",
        task: "image-text embedding",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 16),
        source: "Zhai et al. 2023 (arXiv 2303.15343); timm vit_base_patch16_siglip_224",
    },
    // Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (arXiv
    // 2104.14294); facebookresearch/dino dino_vits8: PatchEmbed nn.Conv2d(3, 384,
    // kernel_size=8, stride=8).
    Architecture {
        name: "DINO ViT-S/8",
        family: "self-supervised / multimodal ViT",
        task: "self-supervised features",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(384, 8),
        source: "Caron et al. 2021 (arXiv 2104.14294); facebookresearch/dino dino_vits8",
    },
    // Oquab et al., "DINOv2" (arXiv 2304.07193); facebookresearch/dinov2 dinov2_vits14:
    // PatchEmbed nn.Conv2d(3, 384, kernel_size=14, stride=14). 224 as in the linear evaluation
    // (the hub models are built for 518 and interpolate position embeddings).
    Architecture {
        name: "DINOv2 ViT-S/14",
        family: "self-supervised / multimodal ViT",
        task: "self-supervised features",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(384, 14),
        source: "Oquab et al. 2023 (arXiv 2304.07193); facebookresearch/dinov2 dinov2_vits14",
    },
    // Oquab et al. 2023 (arXiv 2304.07193); facebookresearch/dinov2 dinov2_vitb14: PatchEmbed
    // nn.Conv2d(3, 768, kernel_size=14, stride=14).
    Architecture {
        name: "DINOv2 ViT-B/14",
        family: "self-supervised / multimodal ViT",
        task: "self-supervised features",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 14),
        source: "Oquab et al. 2023 (arXiv 2304.07193); facebookresearch/dinov2 dinov2_vitb14",
    },
    // Oquab et al. 2023 (arXiv 2304.07193); facebookresearch/dinov2 dinov2_vitl14: PatchEmbed
    // nn.Conv2d(3, 1024, kernel_size=14, stride=14).
    Architecture {
        name: "DINOv2 ViT-L/14",
        family: "self-supervised / multimodal ViT",
        task: "self-supervised features",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(1024, 14),
        source: "Oquab et al. 2023 (arXiv 2304.07193); facebookresearch/dinov2 dinov2_vitl14",
    },
    // Bao et al., "BEiT" (arXiv 2106.08254); microsoft/unilm beit, timm
    // beit_base_patch16_224: PatchEmbed Conv2d(3, 768, kernel_size=16, stride=16).
    Architecture {
        name: "BEiT-B/16",
        family: "self-supervised / multimodal ViT",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 16),
        source: "Bao et al. 2022 (arXiv 2106.08254); microsoft/unilm, timm beit_base_patch16_224",
    },
    // ---------------------------------------------------------------- MLP and mixer
    // Tolstikhin et al., "MLP-Mixer" (arXiv 2105.01601); google-research/vision_transformer:
    // stem = nn.Conv(hidden_dim, patches.size, strides=patches.size), i.e. timm mixer_s32_224
    // PatchEmbed Conv2d(3, 512, kernel_size=32, stride=32): the per-patch dense layer.
    Architecture {
        name: "MLP-Mixer S/32",
        family: "MLP and mixer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(512, 32),
        source: "Tolstikhin et al. 2021 (arXiv 2105.01601); google-research/vision_transformer",
    },
    // Tolstikhin et al. 2021 (arXiv 2105.01601); timm mixer_b16_224: PatchEmbed
    // Conv2d(3, 768, kernel_size=16, stride=16).
    Architecture {
        name: "MLP-Mixer B/16",
        family: "MLP and mixer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: HALF,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 16),
        source: "Tolstikhin et al. 2021 (arXiv 2105.01601); timm mixer_b16_224",
    },
    // Touvron et al., "ResMLP" (arXiv 2105.03404); facebookresearch/deit resmlp_12:
    // PatchEmbed(patch_size=16, embed_dim=384), Conv2d(3, 384, kernel_size=16, stride=16).
    Architecture {
        name: "ResMLP-S12",
        family: "MLP and mixer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(384, 16),
        source: "Touvron et al. 2022 (arXiv 2105.03404); facebookresearch/deit resmlp_12",
    },
    // Trockman & Kolter, "Patches Are All You Need?" (arXiv 2201.09792); locuslab/convmixer
    // ConvMixer(dim=768, depth=32, kernel_size=7, patch_size=7): nn.Conv2d(3, 768,
    // kernel_size=patch_size, stride=patch_size). ("/32" is the depth.)
    Architecture {
        name: "ConvMixer-768/32",
        family: "MLP and mixer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 7),
        source: "Trockman & Kolter 2022 (arXiv 2201.09792); locuslab/convmixer",
    },
    // Yu et al., "MetaFormer Is Actually What You Need for Vision" (arXiv 2111.11418);
    // sail-sg/poolformer poolformer_s12: PatchEmbed(patch_size=7, stride=4, padding=2,
    // in_chans=3, embed_dim=64), nn.Conv2d(3, 64, kernel_size=7, stride=4, padding=2).
    Architecture {
        name: "PoolFormer-S12",
        family: "MLP and mixer",
        task: "classification",
        input: [3, 224, 224],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 4, 2),
        source: "Yu et al. 2022 (arXiv 2111.11418); sail-sg/poolformer poolformer_s12",
    },
    // ---------------------------------------------------------------- segmentation
    // Ronneberger et al., "U-Net" (arXiv 1505.04597), Fig. 1: a 572×572 single-channel tile, then
    // "conv 3x3, ReLU" to 64 channels, unpadded (570×570). Original Caffe release (u-net-release).
    Architecture {
        name: "U-Net",
        family: "segmentation",
        task: "biomedical segmentation",
        input: [1, 572, 572],
        preprocessing: "grey levels; 572×572 tile, border extrapolated by mirroring",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 3, 1, 0),
        source: "Ronneberger et al. 2015 (arXiv 1505.04597), Fig. 1",
    },
    // Chen et al., "Rethinking Atrous Convolution" (arXiv 1706.05587); torchvision
    // deeplabv3_resnet50 (weights transforms resize 520): the ResNet-50 backbone's conv1 =
    // Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False); dilation only later.
    Architecture {
        name: "DeepLabV3-R50",
        family: "segmentation",
        task: "semantic segmentation",
        input: [3, 520, 520],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "Chen et al. 2017 (arXiv 1706.05587); torchvision deeplabv3_resnet50",
    },
    // Xie et al., "SegFormer" (arXiv 2105.15203); NVlabs/SegFormer mit_b0: OverlapPatchEmbed
    // patch_size=7, stride=4, embed_dim=32: nn.Conv2d(3, 32, kernel_size=7, stride=4,
    // padding=(7 // 2, 7 // 2)). 512×512 as in the ADE20K configuration.
    Architecture {
        name: "SegFormer-B0",
        family: "segmentation",
        task: "semantic segmentation",
        input: [3, 512, 512],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 7, 4, 3),
        source: "Xie et al. 2021 (arXiv 2105.15203); NVlabs/SegFormer mit_b0",
    },
    // Xie et al. 2021 (arXiv 2105.15203); NVlabs/SegFormer mit_b2: OverlapPatchEmbed
    // nn.Conv2d(3, 64, kernel_size=7, stride=4, padding=3). 512×512 (ADE20K).
    Architecture {
        name: "SegFormer-B2",
        family: "segmentation",
        task: "semantic segmentation",
        input: [3, 512, 512],
        preprocessing: IMAGENET,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 4, 3),
        source: "Xie et al. 2021 (arXiv 2105.15203); NVlabs/SegFormer mit_b2",
    },
    // Kirillov et al., "Segment Anything" (arXiv 2304.02643); facebookresearch/segment-anything
    // vit_b image encoder: PatchEmbed nn.Conv2d(3, 768, kernel_size=(16, 16),
    // stride=(16, 16), padding=(0, 0)). Sam.preprocess normalises, then zero-pads the image
    // (longest side resized to 1024) to 1024×1024; for a square image the padding is empty.
    Architecture {
        name: "SAM ViT-B",
        family: "segmentation",
        task: "promptable segmentation",
        input: [3, 1024, 1024],
        preprocessing: "RGB 0..255, ImageNet mean/std; longest side resized to 1024",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::patches(768, 16),
        source: "Kirillov et al. 2023 (arXiv 2304.02643); facebookresearch/segment-anything",
    },
    // ---------------------------------------------------------------- detection
    // Carion et al., "End-to-End Object Detection with Transformers" (arXiv 2005.12872);
    // facebookresearch/detr detr_resnet50: torchvision resnet50 backbone, conv1 =
    // Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False). Evaluation resizes to
    // short side 800, long side at most 1333; a single image is not padded further.
    Architecture {
        name: "DETR-R50",
        family: "detection",
        task: "object detection",
        input: [3, 800, 1333],
        preprocessing: "RGB in [0, 1], ImageNet mean/std; short side 800, long side ≤ 1333",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(64, 7, 2, 3),
        source: "Carion et al. 2020 (arXiv 2005.12872); facebookresearch/detr",
    },
    // Ren et al., "Faster R-CNN" (arXiv 1506.01497) with FPN (Lin et al., arXiv 1612.03144);
    // torchvision fasterrcnn_resnet50_fpn: conv1 = Conv2d(3, 64, kernel_size=7, stride=2,
    // padding=3, bias=False). GeneralizedRCNNTransform(min_size=800, max_size=1333) normalises,
    // resizes, then zero-fills the batch up to a multiple of 32 (size_divisible=32): 1333 wide
    // becomes 1344, which to conv1 is 11 more zero columns on the right, hence pads 3, 3, 3, 14.
    Architecture {
        name: "Faster R-CNN R50-FPN",
        family: "detection",
        task: "object detection",
        input: [3, 800, 1333],
        preprocessing: "RGB in [0, 1], ImageNet mean/std in the model; short side 800, long ≤ 1333",
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv {
            out_channels: 64,
            kernel: [7, 7],
            stride: [2, 2],
            pads: [3, 3, 3, 3 + 11],
            dilation: [1, 1],
            groups: 1,
        },
        source: "Ren et al. 2015 (arXiv 1506.01497); torchvision fasterrcnn_resnet50_fpn",
    },
    // Jocher et al., ultralytics/yolov5 v5.0, models/common.py Focus: x[..., ::2, ::2] etc.
    // concatenated (3 → 12 channels at half resolution), then Conv(12, 32, k=3, s=1, p=1).
    Architecture {
        name: "YOLOv5s",
        family: "detection",
        task: "object detection",
        input: [3, 640, 640],
        preprocessing: YOLO,
        before: BeforeFirstLayer::SpaceToDepth { block: 2 },
        first_layer: FirstConv::square(32, 3, 1, 1),
        source: "ultralytics/yolov5 v5.0, models/common.py (Focus) and models/yolov5s.yaml",
    },
    // Jocher et al., ultralytics/yolov5 v6.0 and later, models/yolov5s.yaml: the Focus layer
    // replaced by [-1, 1, Conv, [64, 6, 2, 2]] at width 0.5, i.e. Conv(3, 32, k=6, s=2, p=2).
    Architecture {
        name: "YOLOv5s v6.0",
        family: "detection",
        task: "object detection",
        input: [3, 640, 640],
        preprocessing: YOLO,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(32, 6, 2, 2),
        source: "ultralytics/yolov5 v6.0, models/yolov5s.yaml",
    },
    // Jocher et al., ultralytics YOLOv8 (no paper), ultralytics/cfg/models/v8/yolov8.yaml:
    // [-1, 1, Conv, [64, 3, 2]] at width 0.25, i.e. Conv(3, 16, k=3, s=2, p=1) (autopad k // 2).
    Architecture {
        name: "YOLOv8n",
        family: "detection",
        task: "object detection",
        input: [3, 640, 640],
        preprocessing: YOLO,
        before: BeforeFirstLayer::Nothing,
        first_layer: FirstConv::square(16, 3, 2, 1),
        source: "ultralytics YOLOv8 (2023), ultralytics/cfg/models/v8/yolov8.yaml",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The channels, height and width the first layer sees, after whatever sits before it.
    fn layer_input(a: &Architecture) -> [usize; 3] {
        let [c, h, w] = a.input;
        match a.before {
            BeforeFirstLayer::Nothing => [c, h, w],
            BeforeFirstLayer::SpaceToDepth { block } => [c * block * block, h / block, w / block],
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            for b in &CATALOGUE[i + 1..] {
                assert_ne!(a.name, b.name, "{} is listed twice", a.name);
            }
        }
    }

    #[test]
    fn every_family_is_listed_in_families_and_every_listed_family_is_used() {
        for a in CATALOGUE {
            assert!(
                FAMILIES.contains(&a.family),
                "{}: family {:?} is not in FAMILIES",
                a.name,
                a.family
            );
        }
        for f in FAMILIES {
            assert!(CATALOGUE.iter().any(|a| a.family == *f), "family {f:?} has no entry");
        }
    }

    #[test]
    fn the_catalogue_covers_the_surveyed_architectures() {
        let required = [
            "AlexNet",
            "VGG-16",
            "ResNet-18",
            "ResNet-50",
            "ResNet-152",
            "DenseNet-121",
            "Inception-v3",
            "MobileNetV2",
            "MobileNetV3-Large",
            "EfficientNet-B0",
            "EfficientNet-B7",
            "RegNetY-400MF",
            "ConvNeXt-T",
            "Swin-T",
            "ViT-Ti/16",
            "ViT-S/16",
            "ViT-B/16",
            "ViT-L/16",
            "ViT-B/32",
            "ViT-L/32",
            "ViT-H/14",
            "DeiT-S",
            "CLIP ViT-B/32",
            "CLIP ViT-L/14",
            "DINOv2 ViT-S/14",
            "DINOv2 ViT-B/14",
            "MLP-Mixer S/32",
            "MLP-Mixer B/16",
            "ResMLP-S12",
            "ConvMixer-768/32",
            "PoolFormer-S12",
            "SegFormer-B0",
            "SegFormer-B2",
            "PVTv2-b0",
            "SAM ViT-B",
            "DETR-R50",
            "Faster R-CNN R50-FPN",
            "YOLOv5s",
            "YOLOv8n",
            "U-Net",
            "DeepLabV3-R50",
            "LeNet-5",
        ];
        for name in required {
            assert!(CATALOGUE.iter().any(|a| a.name == name), "{name} is missing");
        }
    }

    #[test]
    fn every_kernel_fits_its_padded_input() {
        for a in CATALOGUE {
            let [_, h, w] = layer_input(a);
            let l = &a.first_layer;
            let [top, left, bottom, right] = l.pads;
            for (axis, extent) in [(0, top + h + bottom), (1, left + w + right)] {
                let reach = l.dilation[axis] * (l.kernel[axis] - 1) + 1;
                assert!(l.stride[axis] >= 1, "{}: zero stride", a.name);
                assert!(
                    reach <= extent,
                    "{}: kernel reach {reach} > padded extent {extent}",
                    a.name
                );
                // A leading pad as wide as the kernel's reach would make the first window see
                // only zeros: no layer does that. (Trailing pads may: Faster R-CNN's batch
                // padding to a multiple of 32 adds whole windows of zeros on the right.)
                let leading = if axis == 0 { top } else { left };
                assert!(
                    leading < reach,
                    "{}: leading pad {leading} ≥ kernel reach {reach}",
                    a.name
                );
            }
        }
    }

    #[test]
    fn space_to_depth_blocks_divide_the_image() {
        for a in CATALOGUE {
            if let BeforeFirstLayer::SpaceToDepth { block } = a.before {
                assert!(block >= 1);
                assert_eq!(a.input[1] % block, 0, "{}: block {block} does not divide H", a.name);
                assert_eq!(a.input[2] % block, 0, "{}: block {block} does not divide W", a.name);
            }
        }
    }

    #[test]
    fn groups_divide_both_channel_counts() {
        for a in CATALOGUE {
            let [c, _, _] = layer_input(a);
            let l = &a.first_layer;
            assert!(l.groups >= 1 && l.out_channels >= 1, "{}", a.name);
            assert_eq!(c % l.groups, 0, "{}: groups {} ∤ {c} in-channels", a.name, l.groups);
            assert_eq!(l.out_channels % l.groups, 0, "{}: groups ∤ out-channels", a.name);
        }
    }

    #[test]
    fn patch_embeddings_tile_the_image_exactly() {
        // Every unpadded stride = kernel layer in the catalogue is a patch embedding whose patch
        // divides the image (torchvision, timm and the official repos assert or rely on this).
        for a in CATALOGUE {
            let [_, h, w] = layer_input(a);
            let l = &a.first_layer;
            if l.kernel == l.stride && l.pads == [0; 4] && l.kernel[0] > 1 {
                assert_eq!(h % l.kernel[0], 0, "{}: patch {} ∤ H {h}", a.name, l.kernel[0]);
                assert_eq!(w % l.kernel[1], 0, "{}: patch {} ∤ W {w}", a.name, l.kernel[1]);
            }
        }
    }
}
