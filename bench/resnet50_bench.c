/* Inference latency and throughput of ResNet50 (torchvision flavour, the
 * one whose weights libnn imports), 224x224x3, eval mode, at batch 1 and
 * batch 8, through the public API only. bench/resnet50_bench_torch.py is
 * its PyTorch twin; `BENCH_BIN=build/bench/resnet50_bench
 * BENCH_TORCH=bench/resnet50_bench_torch.py scripts/run-bench.sh` prints
 * both side by side (make bench does it after the CNN benchmark).
 *
 * After a warm-up, R repetitions of K forward passes are timed at each
 * batch size; the figure is the median repetition. Output, one figure per
 * line:
 *
 *   libnn b1_ms 60.1            median latency of one batch-1 forward
 *   libnn b1_img_per_s 16.6
 *   libnn b8_ms 400.2           of one batch-8 forward
 *   libnn b8_img_per_s 20.0
 *   libnn base_rss_mb 3.1       peak before the model exists
 *   libnn peak_rss_mb 250.3
 *
 * Weights are random (seeded) unless --weights FILE gives a torchvision
 * safetensors export; speed does not depend on them. */
#include "bench.h"

int main(int argc, char **argv)
{
    bench_name = "resnet50_bench";
    bench_usage_text = "usage: resnet50_bench [--threads N] [--reps R] [--steps K]\n"
                       "                      [--warmup W] [--weights FILE]\n"
                       "(--mode is accepted and ignored: this benchmark is "
                       "inference)\n";
    bench_args a = bench_parse(argc, argv, (bench_args){2, 5, 1, 2, 1, "infer", NULL, BENCH_STEPS | BENCH_MODE | BENCH_WEIGHTS});
    if (nn_set_num_threads(a.threads) != NN_OK) bench_die("threads");
    double base = bench_peak_rss_mb();
    nn_resnet_opts o = NN_RESNET_OPTS_INIT;
    o.flavor = NN_RESNET_TORCHVISION;
    nn_model *m = nn_resnet50(224, 224, 3, 42, &o);
    if (!m) bench_die("nn_resnet50");
    if (a.weights && nn_model_load_safetensors(
                         m, a.weights, NN_WEIGHTS_TORCHVISION_RESNET) != NN_OK)
        bench_die(a.weights);
    bench_imagenet(m, base, &a);
    nn_model_free(m);
    return 0;
}
