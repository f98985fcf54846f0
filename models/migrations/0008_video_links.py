from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_notes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Practice',
            name='video_url_template',
            field=fields.CharField(default='https://meet.jit.si/cabinet-{room}', db_default='https://meet.jit.si/cabinet-{room}', max_length=300),
        ),
    ]
