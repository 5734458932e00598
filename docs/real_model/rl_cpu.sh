#!/usr/bin/env bash
# GRPO vs OAR-G on SmolLM2-135M-Instruct with LoRA, on a 2-core CPU: same budget, one seed, resumable
# (re-run the script: each arm continues from its last complete checkpoint). Arms run one after another.
#   bash docs/real_model/rl_cpu.sh [STEPS] [ARMS...]      (default: 5 steps, grpo oar-g; arms: grpo oar-g oar-p oar-pl)
# then: python -m oarl.math.rl_summary runs/real/rl --out docs/real_model/rl_cpu.json
# OUT (default runs/real/rl) and SCHED (TRL lr_scheduler_type, default linear) may be set in the environment.
set -euo pipefail
STEPS=${1:-5}; shift || true
ARMS=${*:-grpo oar-g}
PY=${PY:-python}
OUT=${OUT:-runs/real/rl}
SCHED=${SCHED:-linear}
SYS=$($PY -c 'from oarl.math.easy_arith import SYSTEM_PROMPT as s; print(s)')
INS=$($PY -c 'from oarl.math.easy_arith import INSTRUCTION as s; print(s)')
export OMP_NUM_THREADS=1
for arm in $ARMS; do
  case $arm in grpo) m=none;; oar-g) m=gradient;; oar-p) m=perturbation;; oar-pl) m=perturbation_linear;; *) echo "unknown arm $arm"; exit 2;; esac
  $PY -m oarl train --task jsonl --data_path docs/real_model/easy_arith_train.jsonl --model_path smollm2-135m \
    --prompt_style chat --system_prompt "$SYS" --instruction "$INS" \
    --use_peft --lora_r 16 --lora_alpha 32 --lora_target_modules q_proj v_proj \
    --oar_method $m --output_dir $OUT/$arm --use_cpu true --bf16 false --report_to none \
    --max_steps "$STEPS" --per_device_train_batch_size 16 --num_generations 8 --max_completion_length 40 \
    --temperature 0.7 --learning_rate 1e-4 --lr_scheduler_type $SCHED --save_strategy steps --save_steps 1 --save_total_limit 1 \
    --logging_steps 1 --gradient_checkpointing false --seed 0 --resume true --disable_tqdm true
done
