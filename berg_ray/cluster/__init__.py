"""berg_ray on Ray: joining or starting a cluster for a command (``local``: a local cluster whose processes end
with the command; ``session``: how every command starts or joins Ray), where accelerator work can run on it now or
after the autoscaler adds nodes (``accelerators``), the application metrics its processes record (``metrics``), and
Ray's harmless native log lines kept off the console (``console_noise``).
"""
