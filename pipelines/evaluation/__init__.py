"""Measuring labels against human coders: MMA-52 detection AP, frame agreement, review ranking."""
