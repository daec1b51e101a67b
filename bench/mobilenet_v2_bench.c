/* Inference latency and throughput of MobileNetV2 (alpha 1.0, with its
 * classifier, torchvision flavour: the one whose weights libnn imports),
 * 224x224x3, eval mode, at batch 1 and batch 8, through the public API
 * only. bench/mobilenet_v2_bench_torch.py is its PyTorch twin;
 * `BENCH_BIN=build/bench/mobilenet_v2_bench
 * BENCH_TORCH=bench/mobilenet_v2_bench_torch.py scripts/run-bench.sh`
 * prints both side by side (make bench does it after ResNet50).
 *
 * After a warm-up, R repetitions of K forward passes are timed at each
 * batch size; the figure is the median repetition. Output, one figure per
 * line:
 *
 *   libnn b1_ms <ms>            median latency of one batch-1 forward
 *   libnn b1_img_per_s <1000 / b1_ms>
 *   libnn b8_ms <ms>            of one batch-8 forward
 *   libnn b8_img_per_s <8000 / b8_ms>
 *   libnn base_rss_mb <MB>      peak before the model exists
 *   libnn peak_rss_mb <MB>
 *
 * Weights are random (seeded) unless --weights FILE gives a torchvision
 * safetensors export; speed does not depend on them. */
#include "bench.h"

int main(int argc, char **argv)
{
    bench_name = "mobilenet_v2_bench";
    bench_usage_text = "usage: mobilenet_v2_bench [--threads N] [--reps R] [--steps K]\n"
                       "                          [--warmup W] [--weights FILE]\n"
                       "(--mode is accepted and ignored: this benchmark is "
                       "inference)\n";
    bench_args a = bench_parse(argc, argv, (bench_args){2, 7, 3, 3, 1, "infer", NULL, BENCH_STEPS | BENCH_MODE | BENCH_WEIGHTS});
    if (nn_set_num_threads(a.threads) != NN_OK) bench_die("threads");
    double base = bench_peak_rss_mb();
    nn_mobilenet_v2_opts o = NN_MOBILENET_V2_OPTS_INIT;
    o.flavor = NN_MOBILENET_TORCHVISION;
    nn_model *m = nn_mobilenet_v2(224, 224, 3, 42, &o);
    if (!m) bench_die("nn_mobilenet_v2");
    if (a.weights &&
        nn_model_load_safetensors(m, a.weights,
                                  NN_WEIGHTS_TORCHVISION_MOBILENET_V2) != NN_OK)
        bench_die(a.weights);
    bench_imagenet(m, base, &a);
    nn_model_free(m);
    return 0;
}
