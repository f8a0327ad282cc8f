"""Research tools: statistically honest validation of strategies and models.

Pure functions only (no I/O, no MLflow): time-series splits with purging and embargo (`splits`), backtest
overfitting statistics (`overfitting`: PBO by CSCV, probabilistic and deflated Sharpe ratios, walk-forward
summaries), Sharpe confidence intervals (`bootstrap`), Monte Carlo drawdown and ruin distributions (`montecarlo`),
and parameter / entry-delay sensitivity (`robustness`). Import the submodules directly; this package imports
nothing so that `import arena_lib` stays fast.
"""
