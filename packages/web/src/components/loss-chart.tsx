import { useEffect, useRef } from "react";
import uPlot from "uplot";

export interface LossSeries {
  steps: number[];
  loss: number[];
  avgLoss: Array<number | null>;
}

/** The loss curve (raw and smoothed) with uPlot: fast for tens of thousands of points. */
export function LossChart({ data, height = 220 }: { data: LossSeries; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const smoothed = data.avgLoss.some((v) => v !== null) ? data.avgLoss : ema(data.loss);
    const opts: uPlot.Options = {
      width: el.clientWidth || 600,
      height,
      scales: { x: { time: false } },
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        // Steps are whole numbers: no 1.5 ticks on a short run.
        { label: "step", stroke: "#5b6472", grid: { stroke: "#eef0f3" }, size: 36, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000] },
        { stroke: "#5b6472", grid: { stroke: "#eef0f3" }, size: 50 },
      ],
      series: [
        { label: "step" },
        { label: "loss", stroke: "rgba(37, 99, 235, 0.35)", width: 1, points: { show: false } },
        { label: "smoothed", stroke: "#1d4ed8", width: 2, points: { show: false } },
      ],
    };
    plot.current = new uPlot(opts, [data.steps, data.loss, smoothed], el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // The chart is created once per mount; data updates go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [height]);

  useEffect(() => {
    const smoothed = data.avgLoss.some((v) => v !== null) ? data.avgLoss : ema(data.loss);
    plot.current?.setData([data.steps, data.loss, smoothed]);
  }, [data]);

  return <div className="loss-chart" ref={box} data-testid="loss-chart" data-points={data.steps.length} />;
}

/** Exponential moving average, for trainers that do not report a smoothed loss. */
function ema(values: number[], alpha = 0.1): number[] {
  const out: number[] = [];
  let acc: number | undefined;
  for (const v of values) {
    acc = acc === undefined ? v : acc + alpha * (v - acc);
    out.push(acc);
  }
  return out;
}
